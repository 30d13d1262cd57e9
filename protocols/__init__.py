"""Sans-I/O protocol implementations: bytes in, events out; events in, bytes out.

Nothing under this package imports asyncio, socket, redis or time. Time is always an argument.
"""
