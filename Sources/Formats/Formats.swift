// Formats: reading and writing DFT data files (DeepH legacy, DeepH-dock, archives of either) into
// the internal representation of Structures, converting orbital order and atom indexing at the edge.
import Structures
