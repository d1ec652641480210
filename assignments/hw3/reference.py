"""HW3's reference network, for the grader only (grader-only: rubric.yaml's hidden_files;
never copied to the release). The same code as the solution in source/hw3/HW3.ipynb
(tests/test_autograder_hw3.py checks that they agree); the hidden checks load the
grader's seeded weights into it, in the order forward calls its layers, to compute what
a student's network must output with the same weights."""
import torch
from torch import nn


class batch_norm_relu_layer(nn.Module):
    """BatchNorm2d followed by ReLU. `momentum` keeps the starter's TensorFlow meaning:
    the share of the running average kept at each step (0.997)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.997) -> None:
        super().__init__()
        self.batch_norm = nn.BatchNorm2d(num_features, eps=eps, momentum=1 - momentum)  # PyTorch: the new batch's share
        self.relu = nn.ReLU()

    def forward(self, inputs):
        return self.relu(self.batch_norm(inputs))


class standard_block(nn.Module):
    """ResNet v1 block: conv3x3 (stride) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    filters: the block's output channels. projection_shortcut: None (the shortcut is the
    input itself) or the module that maps the input to the output's shape. strides: the
    first convolution's stride. first_num_filters: the channels of the block's input.
    """

    def __init__(self, filters, projection_shortcut, strides, first_num_filters) -> None:
        super().__init__()
        self.projection_shortcut = projection_shortcut
        self.conv1 = nn.Conv2d(first_num_filters, filters, 3, stride=strides, padding=1, bias=False)
        self.bn_relu1 = batch_norm_relu_layer(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters, momentum=1 - 0.997)
        self.relu = nn.ReLU()

    def forward(self, inputs):
        shortcut = inputs if self.projection_shortcut is None else self.projection_shortcut(inputs)
        outputs = self.bn2(self.conv2(self.bn_relu1(self.conv1(inputs))))
        return self.relu(outputs + shortcut)


class bottleneck_block(nn.Module):
    """ResNet v2 full pre-activation bottleneck block:
    BN -> ReLU -> conv1x1 -> BN -> ReLU -> conv3x3 (stride) -> BN -> ReLU -> conv1x1 (4x wider), plus the shortcut.

    filters: the block's OUTPUT channels (4 times the bottleneck width). A projection
    shortcut takes the pre-activated input (after the first BN -> ReLU), as in He et al. (2016).
    """

    def __init__(self, filters, projection_shortcut, strides, first_num_filters) -> None:
        super().__init__()
        width = filters // 4
        self.projection_shortcut = projection_shortcut
        self.preact = batch_norm_relu_layer(first_num_filters)
        self.conv1 = nn.Conv2d(first_num_filters, width, 1, bias=False)
        self.bn_relu2 = batch_norm_relu_layer(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=strides, padding=1, bias=False)
        self.bn_relu3 = batch_norm_relu_layer(width)
        self.conv3 = nn.Conv2d(width, filters, 1, bias=False)

    def forward(self, inputs):
        preactivated = self.preact(inputs)
        shortcut = inputs if self.projection_shortcut is None else self.projection_shortcut(preactivated)
        outputs = self.conv1(preactivated)
        outputs = self.conv2(self.bn_relu2(outputs))
        outputs = self.conv3(self.bn_relu3(outputs))
        return outputs + shortcut


class stack_layer(nn.Module):
    """resnet_size blocks; the first one changes the shape (stride, channels) with a projection shortcut if needed.

    filters: the stack's filters (16, 32, 64 with first_num_filters=16); its blocks output
    filters channels (standard_block) or 4 * filters (bottleneck_block). block_fn: the block
    class (or its name as a string). strides: the first block's stride. first_num_filters:
    the network's first_num_filters (the channels entering the first stack).
    """

    def __init__(self, filters, block_fn, strides, resnet_size, first_num_filters) -> None:
        super().__init__()
        bottleneck = block_fn in (bottleneck_block, "bottleneck_block")  # == on a string, never `is`
        block_fn = bottleneck_block if bottleneck else standard_block
        filters_out = filters * 4 if bottleneck else filters
        in_channels = first_num_filters if strides == 1 else filters_out // 2
        blocks = []
        for i in range(resnet_size):
            stride = strides if i == 0 else 1
            projection = None
            if i == 0 and (stride != 1 or in_channels != filters_out):
                projection = nn.Conv2d(in_channels, filters_out, 1, stride=stride, bias=False)
            blocks.append(block_fn(filters_out, projection, stride, in_channels if i == 0 else filters_out))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, inputs):
        for block in self.blocks:
            inputs = block(inputs)
        return inputs


class output_layer(nn.Module):
    """(v2 only: a final BN -> ReLU), global average pooling, then a linear layer to num_classes scores."""

    def __init__(self, filters, resnet_version, num_classes) -> None:
        super().__init__()
        self.bn_relu = batch_norm_relu_layer(filters) if resnet_version == 2 else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, inputs):
        if self.bn_relu is not None:
            inputs = self.bn_relu(inputs)
        return self.fc(torch.flatten(self.pool(inputs), 1))


class ResNet(nn.Module):
    def __init__(self, resnet_version, resnet_size, num_classes, first_num_filters) -> None:
        """resnet_version: 1 (standard blocks) or 2 (pre-activation bottleneck blocks).
        resnet_size: n, the blocks per stack. num_classes: the scores it outputs.
        first_num_filters: the start layer's filters (16)."""
        super().__init__()
        self.resnet_version = resnet_version
        self.resnet_size = resnet_size
        self.num_classes = num_classes
        self.first_num_filters = first_num_filters
        self.start_layer = nn.Conv2d(3, first_num_filters, 3, padding=1, bias=False)
        self.batch_norm_relu_start = batch_norm_relu_layer(first_num_filters) if resnet_version == 1 else None
        block_fn = standard_block if resnet_version == 1 else bottleneck_block
        self.stack_layers = nn.ModuleList()
        for i in range(3):
            filters = first_num_filters * (2 ** i)
            strides = 1 if i == 0 else 2
            self.stack_layers.append(stack_layer(filters, block_fn, strides, resnet_size, first_num_filters))
        self.output_layer = output_layer(filters * 4 if resnet_version == 2 else filters, resnet_version, num_classes)

    def forward(self, inputs):
        outputs = self.start_layer(inputs)
        if self.batch_norm_relu_start is not None:
            outputs = self.batch_norm_relu_start(outputs)
        for stack in self.stack_layers:
            outputs = stack(outputs)
        return self.output_layer(outputs)
