// Autograd: placeholder until its module lands.
