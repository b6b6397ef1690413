"""The data pipeline behind the data layers: Datum databases, images as arrays, the
transformer (crop, mirror, mean, scale) and the prefetch thread."""
