"""Feature contract, model artifact format and scoring shared by training and serving."""
