// Bands: placeholder until its module lands.
