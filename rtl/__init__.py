"""bs4nn.rtl"""
