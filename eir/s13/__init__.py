"""The S13/S13' front end (3GPP TS 29.272): ME-Identity-Check answered from the equipment register."""

from .frontend import FailPolicy, S13Frontend, S13Settings

__all__ = ["FailPolicy", "S13Frontend", "S13Settings"]
