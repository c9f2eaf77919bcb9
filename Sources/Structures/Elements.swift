// The periodic table by symbol: the only place atomic numbers and symbols are mapped.

public enum Elements {
    public static let symbols: [String] = [
        "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl",
        "Ar", "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As",
        "Se", "Br", "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In",
        "Sn", "Sb", "Te", "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb",
        "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl",
        "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk",
        "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh",
        "Fl", "Mc", "Lv", "Ts", "Og",
    ]

    private static let numbers: [String: Int] = Dictionary(
        uniqueKeysWithValues: symbols.enumerated().map { ($1, $0 + 1) })

    /// Atomic number of a symbol such as "Mo"; nil when unknown.
    public static func atomicNumber(of symbol: String) -> Int? { numbers[symbol] }

    /// Symbol of an atomic number; nil outside 1…118.
    public static func symbol(of z: Int) -> String? {
        (1 ... symbols.count).contains(z) ? symbols[z - 1] : nil
    }
}
