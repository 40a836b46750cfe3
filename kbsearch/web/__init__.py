"""The employee search page: server-rendered Django templates over the same services as the API."""
