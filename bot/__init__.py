"""The application: use cases, outbox worker, scheduler, HTTP app and CLI; wires everything together."""
