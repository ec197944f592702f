"""The use cases: what claimdesk does (ingest, claim and the other card actions, reply,
assign, notify, digest, presence, privacy) and the views they render. They drive no loop
and know no interface; the runtime and the interfaces call them."""
