"""Dashboard pages, one module per page or resource."""
