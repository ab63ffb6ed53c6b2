"""Wire formats: version 1 of the input events and output records, strict decoders."""
