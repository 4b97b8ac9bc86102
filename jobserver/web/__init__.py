"""The HTTP layer: parse the request, call one domain method, render the answer."""
