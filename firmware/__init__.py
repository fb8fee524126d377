"""bs4nn.firmware"""
