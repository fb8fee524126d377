"""bs4nn.train"""
