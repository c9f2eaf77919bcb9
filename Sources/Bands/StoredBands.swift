// Reading back a band.h5 written by BandStructure.write (the `bands` stage): the k-points, path and
// overlap filter it used and its energies, so a later stage (evaluate) compares against exactly
// those bands instead of recomputing them with settings of its own.
import Foundation
import HDF5Kit
import Structures

public struct StoredBands: Sendable {
    /// Fractional k-points, in path order.
    public var kpoints: [Vec3]
    /// Absolute energies (eV), [band][k].
    public var energies: [[Double]]
    public var path: KPath
    public var distances: [Double]
    public var boundaryDistances: [Double]
    /// The S(k) filter the bands were solved with (nil: none), and the most directions it removed.
    public var overlapThreshold: Double?
    public var droppedOverlapDirections: Int

    public static func read(_ url: URL) throws -> StoredBands {
        let file = try HDF5File(readingAt: url.path)
        func fail(_ field: String, _ message: String) -> HDF5Error { HDF5Error(file: url.path, object: field, message: message) }
        let k = try file.readDoubles("kpoints_frac_list")
        guard k.shape.count == 2, k.shape[1] == 3, k.shape[0] >= 1 else { throw fail("kpoints_frac_list", "expected shape [nk, 3], found \(k.shape)") }
        let nk = k.shape[0]
        let data = try file.readDoubles("band_data")
        guard data.shape.count == 2, data.shape[1] == nk, data.shape[0] >= 1 else {
            throw fail("band_data", "expected shape [bands, \(nk)], found \(data.shape)")
        }
        let shift = try file.readDoubles("fermi_energy_before_shift_eV").values.first ?? .nan
        let offset = shift.isFinite ? shift : 0
        let energies = (0 ..< data.shape[0]).map { b in (0 ..< nk).map { data.values[b * nk + $0] + offset } }
        let counts = try file.readInt64s("k_path_density_list").values.map(Int.init)
        let ends = try file.readDoubles("hsk_vector_list")
        let labels = try file.readStrings("hsk_symbol_list").values
        guard ends.values.count == counts.count * 6, labels.count == counts.count * 2, counts.reduce(0, +) == nk else {
            throw fail("k_path_density_list", "path segments (\(counts)) do not match \(nk) k-points and the segment ends")
        }
        let segments = counts.indices.map { p in
            KPathSegment(count: counts[p],
                         start: Vec3(ends.values[6 * p], ends.values[6 * p + 1], ends.values[6 * p + 2]),
                         end: Vec3(ends.values[6 * p + 3], ends.values[6 * p + 4], ends.values[6 * p + 5]),
                         startLabel: labels[2 * p], endLabel: labels[2 * p + 1])
        }
        let threshold = try file.readDoubles("overlap_drop_threshold").values.first ?? 0
        return StoredBands(kpoints: (0 ..< nk).map { Vec3(k.values[3 * $0], k.values[3 * $0 + 1], k.values[3 * $0 + 2]) },
                           energies: energies, path: KPath(segments: segments),
                           distances: try file.readDoubles("kpoints_distance_list").values,
                           boundaryDistances: try file.readDoubles("hsk_distance_list").values,
                           overlapThreshold: threshold > 0 ? threshold : nil,
                           droppedOverlapDirections: Int(try file.readInt64s("overlap_dropped_directions").values.first ?? 0))
    }
}
