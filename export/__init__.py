"""bs4nn.export"""
