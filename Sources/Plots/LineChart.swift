// Line charts: band structures, densities of states, learning curves, anything y(x).
import Foundation

public struct LineChart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var width = 720.0
    public var height = 540.0
    public var margins = Margins.standard
    /// Axis ranges; nil takes the data's range (y padded by 5 %).
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    public var logY = false
    /// Labelled x ticks (e.g. high-symmetry points); nice numbers when nil.
    public var xTicks: [(Double, String)]?
    public var series: [Series] = []
    public var verticalMarkers: [VerticalMarker] = []
    public var horizontalLines: [HorizontalLine] = []
    /// Legend of the named series, top right inside the plot.
    public var showLegend = true
    public var grid = false

    public init(title: String = "", xLabel: String, yLabel: String) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel
    }

    /// The resolved data → pixel map.
    public var frame: PlotFrame {
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.map(\.y) }
        var x = xRange ?? dataRange(xs, pad: 0)
        if x.upperBound <= x.lowerBound { x = x.lowerBound ... x.lowerBound + 1 }
        var y = yRange ?? dataRange(ys, pad: 0.05, positiveOnly: logY)
        if logY && y.lowerBound <= 0 { y = dataRange(ys, pad: 0.05, positiveOnly: true) }
        if y.upperBound <= y.lowerBound { y = y.lowerBound ... y.lowerBound + 1 }
        return PlotFrame(width: width, height: height, margins: margins, xRange: x, yRange: y, logY: logY)
    }

    public func render() -> String {
        let fr = frame
        let f = SVG.f
        var s = SVG.header(width: width, height: height)
        s += SVG.clipPath(fr, id: "plot-area")
        let xt: [(Double, String)] = xTicks ?? {
            let ticks = NiceScale.ticks(fr.xRange.lowerBound, fr.xRange.upperBound)
            let step = NiceScale.step(span: fr.xRange.upperBound - fr.xRange.lowerBound)
            return ticks.map { ($0, NiceScale.label($0, step: step)) }
        }()
        let yt: [(Double, String)]
        if logY {
            yt = NiceScale.logTicks(fr.yRange.lowerBound, fr.yRange.upperBound).map { ($0, NiceScale.logLabel($0)) }
        } else {
            let step = NiceScale.step(span: fr.yRange.upperBound - fr.yRange.lowerBound)
            yt = NiceScale.ticks(fr.yRange.lowerBound, fr.yRange.upperBound).map { ($0, NiceScale.label($0, step: step)) }
        }
        s += SVG.axes(fr, title: title, xLabel: xLabel, yLabel: yLabel, xTicks: xt, yTicks: yt, grid: grid)

        for m in verticalMarkers where m.x >= fr.xRange.lowerBound && m.x <= fr.xRange.upperBound {
            let x = fr.px(m.x)
            s += "<line x1=\"\(f(x))\" y1=\"\(f(fr.top))\" x2=\"\(f(x))\" y2=\"\(f(fr.bottom))\" stroke=\"\(m.color)\" stroke-width=\"\(m.width)\"\(SVG.dash(m.style))/>\n"
            if let label = m.label {
                // Labels of markers in the right half run leftwards so they stay inside the plot;
                // they sit at the top, where the legend (top right) may be, only for left-half markers.
                let leftwards = x > (fr.left + fr.right) / 2
                s += SVG.text(label, x: leftwards ? x - 4 : x + 4, y: leftwards ? fr.bottom - 6 : fr.top + 12,
                              anchor: leftwards ? "end" : "start", size: 11)
            }
        }
        for h in horizontalLines where fr.drawable(0, h.y) && h.y >= fr.yRange.lowerBound && h.y <= fr.yRange.upperBound {
            let y = fr.py(h.y)
            s += "<line x1=\"\(f(fr.left))\" y1=\"\(f(y))\" x2=\"\(f(fr.right))\" y2=\"\(f(y))\" stroke=\"\(h.color)\" stroke-width=\"\(h.width)\"\(SVG.dash(h.style))/>\n"
            if let label = h.label { s += SVG.text(label, x: fr.right - 4, y: y - 4, anchor: "end", size: 11) }
        }

        s += "<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-linejoin=\"round\">\n"
        for (n, line) in series.enumerated() {
            let color = line.color ?? Palette.color(n)
            // Non-drawable points split the line into runs, each its own polyline.
            var runs: [[String]] = [[]]
            var dots: [String] = []
            for p in line.points {
                if fr.drawable(p.x, p.y) {
                    let xy = "\(f(fr.px(p.x))),\(f(fr.py(p.y)))"
                    runs[runs.count - 1].append(xy)
                    if line.markers { dots.append(xy) }
                } else if !runs[runs.count - 1].isEmpty {
                    runs.append([])
                }
            }
            let nameAttribute = line.name.map { " data-series=\"\(SVG.escape($0))\"" } ?? ""
            for run in runs where !run.isEmpty {
                s += "<polyline\(nameAttribute) stroke=\"\(color)\" stroke-width=\"\(line.width)\"\(SVG.dash(line.style)) points=\"\(run.joined(separator: " "))\"/>\n"
            }
            for d in dots {
                let c = d.split(separator: ",")
                s += "<circle cx=\"\(c[0])\" cy=\"\(c[1])\" r=\"2.5\" fill=\"\(color)\" stroke=\"none\"/>\n"
            }
        }
        s += "</g>\n"
        s += SVG.border(fr)
        if showLegend { s += legend(fr) }
        s += "</svg>\n"
        return s
    }

    private func legend(_ fr: PlotFrame) -> String {
        let named = series.enumerated().compactMap { n, line in line.name.map { (n, $0, line) } }
        guard !named.isEmpty else { return "" }
        let f = SVG.f
        let rowHeight = 18.0
        let textWidth = Double(named.map(\.1.count).max() ?? 0) * 7.2
        let boxWidth = 40 + textWidth, boxHeight = rowHeight * Double(named.count) + 8
        let x0 = fr.right - boxWidth - 8, y0 = fr.top + 8
        var s = "<g class=\"legend\">\n"
        s += "<rect x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(boxWidth))\" height=\"\(f(boxHeight))\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n"
        for (row, (n, name, line)) in named.enumerated() {
            let y = y0 + 4 + rowHeight * (Double(row) + 0.5)
            let color = line.color ?? Palette.color(n)
            s += "<line x1=\"\(f(x0 + 6))\" y1=\"\(f(y))\" x2=\"\(f(x0 + 30))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"\(line.width)\"\(SVG.dash(line.style))/>"
            s += SVG.text(name, x: x0 + 35, y: y + 4, size: 12)
        }
        s += "</g>\n"
        return s
    }

    /// Writes the chart atomically.
    public func write(to url: URL) throws { try SVG.write(render(), to: url) }
}
