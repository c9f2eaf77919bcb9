// Graphs: placeholder until its module lands.
