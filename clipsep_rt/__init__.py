"""clipsep-rt: text-queried sound separation with CLIPSep / CLIPSep-NIT."""

__version__ = "0.1.0"
