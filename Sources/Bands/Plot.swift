// The band-structure and DOS charts, drawn with Plots (the one SVG writer of HarmoSE). `chart`
// is public so other modules (Evaluation overlays predicted on DFT bands) start from the same
// picture.
import Foundation
import Plots

extension BandStructure {
    /// Every band as one polyline, high-symmetry points as labelled ticks with thin vertical
    /// lines, a dashed E_F line, in a window of ±6 eV around E_F (narrowed to the bands' range
    /// when it is smaller; the whole range when E_F is unknown).
    public var chart: LineChart {
        let shifted = shiftedEnergies
        let all = shifted.flatMap { $0 }
        let lo = all.min() ?? -1, hi = all.max() ?? 1
        var yMin = max(-6, lo - 0.5), yMax = min(6, hi + 0.5)
        if analysis.fermiEnergy == nil || yMax <= yMin { yMin = lo - 0.5; yMax = hi + 0.5 }
        var chart = LineChart(title: bandTitle, xLabel: "k-path",
                              yLabel: analysis.fermiEnergy == nil ? "Energy (eV)" : "E − E_F (eV)")
        // A Γ-only path (molecule) has zero length: draw the levels across the plot instead.
        let flat = (distances.last ?? 0) <= 0
        let xs = flat ? distances.indices.map { Double($0) / Double(max(1, distances.count - 1)) } : distances
        chart.xRange = 0 ... (flat ? 1 : max(distances.last ?? 1, 1e-9))
        chart.yRange = yMin ... yMax
        chart.xTicks = flat ? [(0.5, prettyLabel(path.boundaryLabels[0]))]
            : zip(boundaryDistances, path.boundaryLabels).map { ($0, prettyLabel($1)) }
        chart.verticalMarkers = flat ? [] : boundaryDistances.map { VerticalMarker(x: $0, style: .solid, color: "#555", width: 0.7) }
        if analysis.fermiEnergy != nil { chart.horizontalLines = [HorizontalLine(y: 0, label: "E_F")] }
        chart.series = shifted.map { Series(x: xs, y: $0, color: bandColor, width: 1.3) }
        return chart
    }

    public var svg: String { chart.render() }
}

extension DensityOfStates {
    /// DOS against energy, window ±6 eV around E_F when known, dashed E_F marker.
    public var chart: LineChart {
        var xMin = energies.first ?? -1, xMax = energies.last ?? 1
        if fermiEnergy != nil { xMin = max(xMin, -6); xMax = min(xMax, 6) }
        if xMax <= xMin { xMin = energies.first ?? -1; xMax = energies.last ?? 1 }
        let visible = zip(energies, dos).filter { $0.0 >= xMin && $0.0 <= xMax }.map(\.1)
        var chart = LineChart(title: "DOS, \(mesh.x)×\(mesh.y)×\(mesh.z) k-mesh, σ = \(sigma) eV",
                              xLabel: fermiEnergy == nil ? "Energy (eV)" : "E − E_F (eV)", yLabel: "DOS (states / eV / cell)")
        chart.xRange = xMin ... xMax
        chart.yRange = 0 ... max(visible.max() ?? 1, 1e-9) * 1.08
        let kept = zip(energies, dos).filter { $0.0 >= xMin - 1 && $0.0 <= xMax + 1 }
        chart.series = [Series(x: kept.map(\.0), y: kept.map(\.1), color: bandColor, width: 1.3)]
        if fermiEnergy != nil { chart.verticalMarkers = [VerticalMarker(x: 0, label: "E_F")] }
        return chart
    }

    public var svg: String { chart.render() }
}

let bandColor = "#c0392b"
