// Plots: dependency-free SVG charts shared by every module that draws — line charts (several
// series, legend, nice-number ticks, optional log-y, labelled vertical markers and horizontal
// reference lines), scatter/parity plots that switch to a 2D-histogram heat map for many points,
// and learning curves read from JSON lines. Owns the mapping from data to pixel coordinates
// (`PlotFrame`), tick selection (`NiceScale`) and the SVG text itself; nothing else in HarmoSE
// writes SVG by hand.
import Foundation

/// A problem with plot input (a learning-curve file, an output path), naming the file and field.
public struct PlotError: Error, CustomStringConvertible, LocalizedError, Equatable {
    public var file: String
    public var field: String?
    public var message: String
    public init(file: String, field: String? = nil, message: String) {
        self.file = file; self.field = field; self.message = message
    }
    public var description: String {
        if let field, !field.isEmpty { return "\(file): \(field): \(message)" }
        return "\(file): \(message)"
    }
    public var errorDescription: String? { description }
}

/// Tick positions at round numbers (1, 2, 2.5, 5 × 10ⁿ steps) and their labels.
public enum NiceScale {
    /// The round step giving about `target` intervals over `span`.
    public static func step(span: Double, target: Int = 6) -> Double {
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(max(target, 1))
        let magnitude = pow(10, log10(raw).rounded(.down))
        return [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw * (1 - 1e-12) } ?? 10 * magnitude
    }

    /// Multiples of the nice step lying inside `lo…hi` (both ends included up to round-off).
    public static func ticks(_ lo: Double, _ hi: Double, target: Int = 6) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return lo.isFinite ? [lo] : [] }
        let s = step(span: hi - lo, target: target)
        var out: [Double] = []
        var n = (lo / s - 1e-9).rounded(.up)
        while n * s <= hi + s * 1e-9 {
            let t = n * s
            out.append(abs(t) < s * 1e-9 ? 0 : t)
            n += 1
        }
        return out
    }

    /// Ticks for a logarithmic axis over positive `lo…hi`: every power of ten inside, with 2 and 5
    /// multiples added when the range spans fewer than three decades.
    public static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
        guard lo > 0, hi > lo, hi.isFinite else { return lo > 0 ? [lo] : [] }
        let first = Int(log10(lo).rounded(.down)), last = Int(log10(hi).rounded(.up))
        let multiples: [Double] = last - first <= 3 ? [1, 2, 5] : [1]
        var out: [Double] = []
        for e in first ... last {
            for m in multiples {
                let t = m * pow(10, Double(e))
                if t >= lo * (1 - 1e-9), t <= hi * (1 + 1e-9) { out.append(t) }
            }
        }
        // A range narrower than the gaps between 1-2-5 ticks (say 2100…3500) would get no label
        // at all: fall back to evenly spaced round values.
        if out.count < 2 { return ticks(lo, hi).filter { $0 > 0 } }
        return out
    }

    /// A label with as many decimals as the step needs; %g for very large or small magnitudes.
    public static func label(_ value: Double, step: Double) -> String {
        if value == 0 { return "0" }
        let m = abs(value)
        if m >= 1e5 || m < 1e-3 { return String(format: "%g", value) }
        var decimals = max(0, Int((-log10(step)).rounded(.up)))
        // A step such as 2.5 × 10ⁿ needs one digit more than its power of ten.
        let scaled = step / pow(10, (log10(step)).rounded(.down))
        if abs(scaled - scaled.rounded()) > 1e-9 { decimals += 1 }
        return String(format: "%.\(min(decimals, 8))f", value)
    }

    /// Labels for log ticks: %g keeps 0.001 and 1e+06 short.
    public static func logLabel(_ value: Double) -> String { String(format: "%g", value) }
}

/// Colours used when a series or marker does not name one (Tableau 10, colour-blind-friendly order).
public enum Palette {
    public static let categorical = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
    public static func color(_ index: Int) -> String { categorical[index % categorical.count] }

    /// A perceptually ordered ramp (viridis anchors) for heat maps; `t` in 0…1.
    public static func sequential(_ t: Double) -> String {
        let anchors: [(Double, Double, Double)] = [
            (68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37),
        ]
        let x = min(max(t.isFinite ? t : 0, 0), 1) * Double(anchors.count - 1)
        let k = min(Int(x), anchors.count - 2), f = x - Double(k)
        let a = anchors[k], b = anchors[k + 1]
        func mix(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

public enum LineStyle: Sendable, Equatable {
    case solid, dashed, dotted
    var dashArray: String? {
        switch self {
        case .solid: return nil
        case .dashed: return "6 4"
        case .dotted: return "2 3"
        }
    }
}

/// One polyline of a line chart. Points with a non-finite coordinate (or y ≤ 0 on a log axis)
/// break the line there.
public struct Series: Sendable {
    public var name: String?
    public var points: [(x: Double, y: Double)]
    public var color: String?
    public var style: LineStyle
    public var width: Double
    /// Draw a dot at every point as well (useful for sparse series).
    public var markers: Bool

    public init(name: String? = nil, points: [(x: Double, y: Double)], color: String? = nil,
                style: LineStyle = .solid, width: Double = 1.6, markers: Bool = false) {
        self.name = name; self.points = points; self.color = color
        self.style = style; self.width = width; self.markers = markers
    }

    public init(name: String? = nil, x: [Double], y: [Double], color: String? = nil,
                style: LineStyle = .solid, width: Double = 1.6, markers: Bool = false) {
        precondition(x.count == y.count, "series '\(name ?? "")': \(x.count) x values for \(y.count) y values")
        self.init(name: name, points: zip(x, y).map { (x: $0.0, y: $0.1) }, color: color, style: style,
                  width: width, markers: markers)
    }
}

/// A vertical line across the plot at `x` (a band-path boundary, E_F in a DOS, the best epoch).
public struct VerticalMarker: Sendable {
    public var x: Double
    public var label: String?
    public var style: LineStyle
    public var color: String
    public var width: Double
    public init(x: Double, label: String? = nil, style: LineStyle = .dashed, color: String = "black", width: Double = 0.8) {
        self.x = x; self.label = label; self.style = style; self.color = color; self.width = width
    }
}

/// A horizontal line across the plot at `y` (E_F in a band plot, a target error).
public struct HorizontalLine: Sendable {
    public var y: Double
    public var label: String?
    public var style: LineStyle
    public var color: String
    public var width: Double
    public init(y: Double, label: String? = nil, style: LineStyle = .dashed, color: String = "black", width: Double = 0.8) {
        self.y = y; self.label = label; self.style = style; self.color = color; self.width = width
    }
}

public struct Margins: Sendable, Equatable {
    public var left: Double, right: Double, top: Double, bottom: Double
    public init(left: Double, right: Double, top: Double, bottom: Double) {
        self.left = left; self.right = right; self.top = top; self.bottom = bottom
    }
    public static let standard = Margins(left: 78, right: 24, top: 40, bottom: 62)
}

/// The data → pixel map of one plot: x grows right, y grows up (SVG y grows down), optionally
/// logarithmic in y. Tests use it to check where known points land.
public struct PlotFrame: Sendable, Equatable {
    public var width: Double, height: Double
    public var margins: Margins
    public var xRange: ClosedRange<Double>
    public var yRange: ClosedRange<Double>
    public var logY: Bool

    public var left: Double { margins.left }
    public var right: Double { width - margins.right }
    public var top: Double { margins.top }
    public var bottom: Double { height - margins.bottom }
    public var plotWidth: Double { right - left }
    public var plotHeight: Double { bottom - top }

    public func px(_ x: Double) -> Double {
        left + (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * plotWidth
    }

    public func py(_ y: Double) -> Double {
        if logY {
            let lo = log10(yRange.lowerBound), hi = log10(yRange.upperBound)
            return top + (hi - log10(y)) / (hi - lo) * plotHeight
        }
        return top + (yRange.upperBound - y) / (yRange.upperBound - yRange.lowerBound) * plotHeight
    }

    /// Whether a data point can be drawn (finite, and positive on a log axis).
    public func drawable(_ x: Double, _ y: Double) -> Bool {
        x.isFinite && y.isFinite && (!logY || y > 0)
    }
}

/// SVG text building shared by the chart types.
enum SVG {
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// Two decimals: a hundredth of a pixel is invisible and keeps files small.
    static func f(_ v: Double) -> String { String(format: "%.2f", v) }

    static func header(width: Double, height: Double) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"13\">\n"
            + "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    }

    static func dash(_ style: LineStyle) -> String {
        style.dashArray.map { " stroke-dasharray=\"\($0)\"" } ?? ""
    }

    static func text(_ s: String, x: Double, y: Double, anchor: String = "start", size: Double? = nil, extra: String = "") -> String {
        let sizeAttribute = size.map { " font-size=\"\(Int($0))\"" } ?? ""
        return "<text x=\"\(f(x))\" y=\"\(f(y))\" text-anchor=\"\(anchor)\"\(sizeAttribute)\(extra)>\(escape(s))</text>\n"
    }

    /// Frame, axis ticks with labels, axis titles and the plot title.
    static func axes(_ frame: PlotFrame, title: String, xLabel: String, yLabel: String,
                     xTicks: [(Double, String)], yTicks: [(Double, String)], grid: Bool) -> String {
        var s = ""
        if !title.isEmpty { s += text(title, x: frame.width / 2, y: 24, anchor: "middle", size: 14) }
        for (t, label) in yTicks {
            let y = frame.py(t)
            guard y >= frame.top - 0.5, y <= frame.bottom + 0.5 else { continue }
            if grid {
                s += "<line x1=\"\(f(frame.left))\" y1=\"\(f(y))\" x2=\"\(f(frame.right))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            }
            s += "<line x1=\"\(f(frame.left - 5))\" y1=\"\(f(y))\" x2=\"\(f(frame.left))\" y2=\"\(f(y))\" stroke=\"black\"/>"
            s += text(label, x: frame.left - 8, y: y + 4, anchor: "end")
        }
        for (t, label) in xTicks {
            let x = frame.px(t)
            guard x >= frame.left - 0.5, x <= frame.right + 0.5 else { continue }
            if grid {
                s += "<line x1=\"\(f(x))\" y1=\"\(f(frame.top))\" x2=\"\(f(x))\" y2=\"\(f(frame.bottom))\" stroke=\"#e5e5e5\"/>\n"
            }
            s += "<line x1=\"\(f(x))\" y1=\"\(f(frame.bottom))\" x2=\"\(f(x))\" y2=\"\(f(frame.bottom + 5))\" stroke=\"black\"/>"
            s += text(label, x: x, y: frame.bottom + 20, anchor: "middle")
        }
        s += text(xLabel, x: (frame.left + frame.right) / 2, y: frame.height - 14, anchor: "middle")
        s += "<text transform=\"translate(20 \(f((frame.top + frame.bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        return s
    }

    static func border(_ frame: PlotFrame) -> String {
        "<rect x=\"\(f(frame.left))\" y=\"\(f(frame.top))\" width=\"\(f(frame.plotWidth))\" height=\"\(f(frame.plotHeight))\" fill=\"none\" stroke=\"black\"/>\n"
    }

    static func clipPath(_ frame: PlotFrame, id: String) -> String {
        "<defs><clipPath id=\"\(id)\"><rect x=\"\(f(frame.left))\" y=\"\(f(frame.top))\" width=\"\(f(frame.plotWidth))\" height=\"\(f(frame.plotHeight))\"/></clipPath></defs>\n"
    }

    /// Writes an SVG document atomically (temporary file + rename), creating the folder.
    static func write(_ svg: String, to url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(svg.utf8).write(to: url, options: .atomic)
        } catch {
            throw PlotError(file: url.path, message: "cannot write SVG: \(error.localizedDescription)")
        }
    }
}

/// Data range of finite values, widened when empty or degenerate so a frame can always be made.
func dataRange(_ values: [Double], pad: Double, positiveOnly: Bool = false) -> ClosedRange<Double> {
    let finite = values.filter { $0.isFinite && (!positiveOnly || $0 > 0) }
    guard var lo = finite.min(), var hi = finite.max() else { return positiveOnly ? 0.1 ... 10 : 0 ... 1 }
    if positiveOnly {
        if hi <= lo { lo /= 2; hi *= 2 }
        let f = pow(hi / lo, pad)
        return (lo / f) ... (hi * f)
    }
    if hi <= lo {
        let d = lo == 0 ? 1 : abs(lo) * 0.1
        lo -= d; hi += d
    }
    let d = (hi - lo) * pad
    return (lo - d) ... (hi + d)
}
