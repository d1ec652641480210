"""What the grader reads from the graded cells' source alone, before anything runs.

Student code and the probes share one process, so code that reaches into that
process (frame walking, the garbage collector's object lists, `/proc` and file
descriptors, ctypes, replacing functions of modules the probes use, importing by
any means) could change any measurement. `scan` finds such code statically; the
pipeline flags the cell for a TA and the submission earns no points for any check
measured in that process (see `pipeline.judge_tampering` for the rule and why).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from checklib.cells import DYNAMIC_IMPORTS, strip_magics

# Attribute and name uses that reach the interpreter's internals.
FRAME_NAMES = {"_getframe": "frame walking", "f_back": "frame walking", "f_globals": "frame walking",
               "f_locals": "frame walking", "f_builtins": "frame walking", "tb_frame": "frame walking",
               "gi_frame": "frame walking", "cr_frame": "frame walking", "ag_frame": "frame walking",
               "currentframe": "frame walking", "stack": None, "settrace": "tracing hooks",
               "setprofile": "tracing hooks", "addaudithook": "tracing hooks",
               "get_objects": "garbage-collector object lists", "get_referrers": "garbage-collector object lists",
               "get_referents": "garbage-collector object lists", "__subclasses__": "reaching every class",
               "__globals__": "function globals", "__builtins__": "the builtins module",
               "__code__": "replacing code objects", "__closure__": "function closures",
               "__loader__": "module loaders", "__spec__": "module loaders", "modules": None}
MODULES = {"inspect": "frame walking (inspect)", "ctypes": "ctypes", "gc": "the garbage collector",
           "sys": "the interpreter (sys)", "builtins": "the builtins module", "importlib": "importing by any means",
           "runpy": "importing by any means", "pkgutil": "importing by any means", "zipimport": "importing by any means",
           "marshal": "code objects (marshal)", "fcntl": "file descriptors",
           "checklib": "the grader's code", "autograder": "the grader's code"}
PATCH_ROOTS = {"json", "torch", "torchvision", "builtins", "sys", "os", "math", "np", "numpy", "nn", "F", "gc",
               "checklib", "autograder", "yaml", "pd", "pandas", "random", "typing"}  # and the setup cell's names
OS_CALLS = {"write", "read", "open", "fdopen", "dup", "dup2", "pipe", "fork", "forkpty", "kill", "killpg", "system",
            "popen", "execv", "execve", "execl", "execlp", "execvp", "spawnl", "spawnv", "posix_spawn", "lseek",
            "close", "closerange", "set_inheritable", "setsid", "setpgid", "mkfifo", "register_at_fork"}
CALLS = {"exec": "running code from a string (exec)", "eval": "running code from a string (eval)",
         "compile": "compiling code from a string", "__import__": "importing by any means",
         "globals": "the namespace's globals()", "breakpoint": "the debugger",
         "setattr": None, "delattr": None}
SENSITIVE_ROOTS = {"sys", "gc", "builtins", "inspect", "ctypes", "os", "json", "importlib", "__builtins__"}
# Modules other modules hold as attributes (torch.hub.json, np.os, ...): reaching one that way
# is an import by other means, or a way round the scan's `os.write` / `sys._getframe` rules.
REACHABLE_MODULES = {"sys": "the interpreter", "os": "processes and file descriptors", "gc": "the garbage collector",
                     "json": "importing by other means", "inspect": "frame walking", "ctypes": "ctypes",
                     "importlib": "importing by any means", "builtins": "the builtins module",
                     "subprocess": "processes", "socket": "sockets", "signal": "signals", "pickle": "unpickling"}
PATHS = ("/proc", "/dev/fd", "/sys/", "/dev/shm")
WATCHED = {name for name, what in FRAME_NAMES.items() if what} | {"modules", "_exit", "write", "fdopen", "dup2"}


@dataclass(frozen=True)
class Finding:
    cell: str
    line: int
    what: str          # the kind of tampering, for the student and the TA
    code: str          # the construct found

    def __str__(self) -> str:
        return f"cell '{self.cell}' line {self.line}: {self.what} ({self.code})"


def scan(cell: str, source: str, protected: set[str]) -> list[Finding]:
    """Tampering constructs in one cell. `protected`: names bound to modules by the
    setup cell (torch, nn, F, ...): assigning to or deleting their attributes, or
    calling setattr/delattr on them, is monkeypatching."""
    try:
        tree = ast.parse(strip_magics(source))
    except SyntaxError:
        return []  # it cannot run either; the cell's own error says so
    found: list[Finding] = []
    protected = set(protected) | _imported_here(tree)  # `import json as j` makes j a module name too

    def add(node, what, code):
        found.append(Finding(cell, getattr(node, "lineno", 0), what, code))

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            what = FRAME_NAMES.get(node.attr)
            if node.attr == "modules" and _root_name(node.value) in ("sys", "os"):
                what = "the interpreter's module table (sys.modules)"
            if node.attr in REACHABLE_MODULES and _root_name(node.value) != node.attr:
                what = f"the {node.attr} module reached through another module ({REACHABLE_MODULES[node.attr]})"
            if node.attr in DYNAMIC_IMPORTS:
                what = "importing by any means"
            if node.attr in OS_CALLS and _root_name(node.value) == "os":
                what = what or f"processes or file descriptors (os.{node.attr})"
            if what:
                add(node, what, ast.unparse(node)[:80])
        elif isinstance(node, ast.Name) and node.id in FRAME_NAMES and FRAME_NAMES[node.id]:
            add(node, FRAME_NAMES[node.id], node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                names += [f"os.{a.name}" for a in node.names if a.name in OS_CALLS]
            for name in names:
                top = name.split(".")[0]
                if MODULES.get(top):
                    add(node, MODULES[top], f"import {name}")
                elif name.startswith("os."):
                    add(node, "processes or file descriptors", f"from os import {name[3:]}")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name in ("setattr", "delattr") and node.args and _root_name(node.args[0]) in protected | PATCH_ROOTS:
                add(node, "monkeypatching a module the grader uses", ast.unparse(node)[:80])
            elif name in ("getattr", "vars") and node.args and _root_name(node.args[0]) in SENSITIVE_ROOTS:
                add(node, "reaching into the interpreter by name", ast.unparse(node)[:80])
            elif name in ("getattr", "hasattr") and len(node.args) >= 2 and _built_string(node.args[1]):
                add(node, "an attribute name put together at run time (out of the scan's sight)", ast.unparse(node)[:80])
            elif name in CALLS and CALLS[name]:
                add(node, CALLS[name], f"{name}(...)")
            elif name == "open" and node.args and _int_expression(node.args[0]):
                add(node, "file descriptors", ast.unparse(node)[:80])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if any(p in node.value for p in PATHS):
                add(node, "the process's /proc or descriptor files", repr(node.value)[:80])
            elif FRAME_NAMES.get(node.value):
                add(node, FRAME_NAMES[node.value] + " (by name)", repr(node.value)[:80])
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Name) \
                and node.value.id in SENSITIVE_ROOTS | {"torch.hub"}:
            add(node, f"another name for the {node.value.id} module (out of the scan's sight)", ast.unparse(node)[:80])
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in _flatten(targets):
                if isinstance(target, (ast.Attribute, ast.Subscript)) and _root_name(target) in protected | PATCH_ROOTS:
                    add(node, "monkeypatching a module the grader uses", ast.unparse(target)[:80])
    return sorted(set(found), key=lambda f: (f.line, f.what))


def _built_string(node) -> bool:
    """A string put together at run time ('_get' + 'frame', f'f_{x}', ''.join(...)) whose
    literal pieces begin or contain a name the scan looks for: the way to name such an
    attribute without spelling it (getattr(self, f'layer{i}') is ordinary and passes)."""
    if not isinstance(node, (ast.JoinedStr, ast.BinOp, ast.Call)):
        return False
    if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "format")):
        return False
    pieces = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return any(len(piece) >= 2 and any(name.startswith(piece) or piece in name or name in piece for name in WATCHED)
               for piece in pieces)


def _int_expression(node) -> bool:
    """A file descriptor number: an int literal, arithmetic on int literals, or int(...)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return all(isinstance(n.value, int) for n in ast.walk(node) if isinstance(n, ast.Constant))
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int"


def _imported_here(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
    return names - {"*"}


def _flatten(targets):
    for t in targets:
        if isinstance(t, (ast.Tuple, ast.List)):
            yield from _flatten(t.elts)
        else:
            yield t


def _root_name(node) -> str | None:
    """`torch` for `torch.nn.Module.named_modules`, `x` for `x[0].y`."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def module_names(setup_source: str) -> set[str]:
    """Names the setup cell binds to modules or their members (torch, nn, F, v2, ...)."""
    names = set()
    try:
        tree = ast.parse(strip_magics(setup_source))
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names - {"*"}
