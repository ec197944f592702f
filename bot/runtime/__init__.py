"""The runtime that drives the use cases: the outbox worker and its deliveries, the clock
(scheduler and steps), mail intake (IMAP) and the live feed of the web inbox."""
