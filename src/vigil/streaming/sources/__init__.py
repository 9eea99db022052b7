"""Sources: transports that turn a plant's protocol into Vigil records for the runtime."""
