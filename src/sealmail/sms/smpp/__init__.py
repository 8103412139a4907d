"""SMPP 3.4: the PDU codec and an asyncio ESME (client)."""
