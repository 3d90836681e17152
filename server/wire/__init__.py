"""The wire layer: encoders, decoders, request and event schemas, and each protocol's
view of a stream. Pure code: nothing here imports tornado or asyncio."""
