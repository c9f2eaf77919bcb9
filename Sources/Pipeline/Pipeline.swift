// Pipeline: placeholder until its module lands.
