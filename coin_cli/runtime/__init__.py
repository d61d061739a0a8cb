"""The event-driven trading runtime behind `coin trade`."""
