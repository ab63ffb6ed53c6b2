"""The WebSocket gateway and the cockpit's static front end."""
