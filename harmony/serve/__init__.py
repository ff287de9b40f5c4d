"""`harmony serve`: an HTTP search service over one gallery that follows its migrations live."""
