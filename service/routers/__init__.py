"""One router per resource; ``service.main`` assembles them."""
