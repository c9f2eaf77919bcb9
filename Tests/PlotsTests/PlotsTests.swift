import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Plots
import TestSupport
import XCTest

/// Parses SVG text with Foundation's XMLParser (so malformed output fails the test) and keeps
/// every element with its attributes and text.
final class SVGDocument: NSObject, XMLParserDelegate {
    struct Element { var name: String; var attributes: [String: String]; var text: String }
    private(set) var elements: [Element] = []
    private var open: [Int] = []
    private(set) var error: Error?

    init(_ svg: String) throws {
        super.init()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = self
        if !parser.parse() { throw parser.parserError ?? error ?? NSError(domain: "svg", code: 1) }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        open.append(elements.count)
        elements.append(Element(name: name, attributes: attributes, text: ""))
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let k = open.last { elements[k].text += string }
    }
    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        open.removeLast()
    }
    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }

    func all(_ name: String) -> [Element] { elements.filter { $0.name == name } }
    var texts: [String] { all("text").map(\.text) }
}

func points(_ attribute: String?) -> [SIMD2<Double>] {
    (attribute ?? "").split(separator: " ").map { pair in
        let c = pair.split(separator: ",").map { Double($0)! }
        return SIMD2(c[0], c[1])
    }
}

final class NiceScaleTests: XCTestCase {
    func testLinearTicksAreRoundNumbers() {
        XCTAssertEqual(NiceScale.ticks(0, 10), [0, 2, 4, 6, 8, 10])
        XCTAssertEqual(NiceScale.ticks(0.13, 0.87), [0.2, 0.4, 0.6, 0.8].map { $0 }, accuracy: 1e-12)
        XCTAssertEqual(NiceScale.ticks(-6, 6), [-6, -4, -2, 0, 2, 4, 6])
        XCTAssertEqual(NiceScale.step(span: 1000), 200)
        XCTAssertEqual(NiceScale.step(span: 14), 2.5)
        XCTAssertEqual(NiceScale.ticks(-0.3, 1.7), [0, 0.5, 1, 1.5])
        // No "-0" label and decimals follow the step.
        XCTAssertEqual(NiceScale.label(0, step: 0.5), "0")
        XCTAssertEqual(NiceScale.label(1.5, step: 0.5), "1.5")
        XCTAssertEqual(NiceScale.label(0.25, step: 0.25), "0.25")
        XCTAssertEqual(NiceScale.label(40, step: 20), "40")
    }

    func testLogTicks() {
        XCTAssertEqual(NiceScale.logTicks(0.003, 20), [0.01, 0.1, 1, 10], accuracy: 1e-12)
        XCTAssertEqual(NiceScale.logTicks(1, 100), [1, 2, 5, 10, 20, 50, 100], accuracy: 1e-9)
        XCTAssertEqual(NiceScale.logLabel(0.001), "0.001")
    }
}

func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(a) vs \(b)", file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy * max(1, abs(y)), "\(a) vs \(b)", file: file, line: line) }
}

final class LineChartTests: XCTestCase {
    func makeChart() -> LineChart {
        var chart = LineChart(title: "A <test> & more", xLabel: "x", yLabel: "y")
        chart.width = 600; chart.height = 400
        chart.margins = Margins(left: 50, right: 10, top: 20, bottom: 30)
        chart.xRange = 0 ... 10
        chart.yRange = 0 ... 100
        chart.series = [Series(name: "a", x: [0, 5, 10], y: [0, 50, 100]),
                        Series(name: "b", x: [0, 10], y: [100, 0], style: .dashed)]
        chart.verticalMarkers = [VerticalMarker(x: 2.5, label: "M")]
        chart.horizontalLines = [HorizontalLine(y: 25, label: "E_F")]
        return chart
    }

    func testKnownPointsLandWhereExpected() throws {
        let doc = try SVGDocument(makeChart().render())
        let a = try XCTUnwrap(doc.all("polyline").first { $0.attributes["data-series"] == "a" })
        // Plot area 540 × 350 starting at (50, 20); y grows downward in SVG.
        XCTAssertEqual(points(a.attributes["points"]), [SIMD2(50, 370), SIMD2(320, 195), SIMD2(590, 20)])
        let b = try XCTUnwrap(doc.all("polyline").first { $0.attributes["data-series"] == "b" })
        XCTAssertEqual(b.attributes["stroke-dasharray"], "6 4")
        // The marker at x = 2.5 and the reference line at y = 25.
        let lines = doc.all("line")
        XCTAssertTrue(lines.contains { $0.attributes["x1"] == "185.00" && $0.attributes["x2"] == "185.00" && $0.attributes["y1"] == "20.00" && $0.attributes["y2"] == "370.00" })
        XCTAssertTrue(lines.contains { $0.attributes["y1"] == "282.50" && $0.attributes["x1"] == "50.00" && $0.attributes["x2"] == "590.00" })
        XCTAssertTrue(doc.texts.contains("A <test> & more"))
        XCTAssertTrue(doc.texts.contains("M") && doc.texts.contains("E_F"))
        // Legend entries and nice ticks.
        XCTAssertTrue(doc.texts.contains("a") && doc.texts.contains("b"))
        for tick in ["0", "20", "40", "60", "80", "100", "2", "4", "6", "8", "10"] {
            XCTAssertTrue(doc.texts.contains(tick), "missing tick \(tick)")
        }
        XCTAssertEqual(doc.all("svg").first?.attributes["width"], "600")
    }

    func testLogAxisAndBrokenLines() throws {
        var chart = LineChart(xLabel: "epoch", yLabel: "loss")
        chart.width = 600; chart.height = 400
        chart.margins = Margins(left: 50, right: 10, top: 20, bottom: 30)
        chart.xRange = 0 ... 4
        chart.yRange = 1 ... 1000
        chart.logY = true
        // NaN and a non-positive value (undrawable on a log axis) split the line into three runs.
        chart.series = [Series(name: "loss", x: [0, 1, 2, 3, 4], y: [1000, .nan, 10, 0, 1])]
        let frame = chart.frame
        XCTAssertEqual(frame.py(10), 20 + 350 * 2.0 / 3, accuracy: 1e-9)
        let doc = try SVGDocument(chart.render())
        let runs = doc.all("polyline").map { points($0.attributes["points"]) }
        XCTAssertEqual(runs.count, 3)
        XCTAssertEqual(runs[0], [SIMD2(50, 20)])
        XCTAssertEqual(runs[1][0].y, 253.33, accuracy: 0.006)
        XCTAssertEqual(runs[2], [SIMD2(590, 370)])
        for tick in ["1", "10", "100", "1000"] { XCTAssertTrue(doc.texts.contains(tick), "missing \(tick)") }
    }

    func testAutomaticRangesAndCustomTicks() throws {
        var chart = LineChart(xLabel: "k", yLabel: "E")
        chart.series = [Series(x: [0, 1, 2], y: [-1, 3, 1])]
        chart.xTicks = [(0, "Γ"), (1, "M"), (2, "K")]
        let frame = chart.frame
        XCTAssertEqual(frame.xRange, 0 ... 2)
        XCTAssertEqual(frame.yRange.lowerBound, -1.2, accuracy: 1e-12)
        XCTAssertEqual(frame.yRange.upperBound, 3.2, accuracy: 1e-12)
        let doc = try SVGDocument(chart.render())
        XCTAssertTrue(doc.texts.contains("Γ") && doc.texts.contains("K"))
        // Unnamed series get no legend.
        XCTAssertFalse(doc.elements.contains { $0.attributes["class"] == "legend" })
    }

    func testWriteIsAtomicAndReadable() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("sub/chart.svg")
        try makeChart().write(to: url)
        _ = try SVGDocument(try String(contentsOf: url, encoding: .utf8))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path), ["chart.svg"])
    }
}

final class ScatterPlotTests: XCTestCase {
    func testPointsModeCoordinates() throws {
        var plot = ScatterPlot(xLabel: "x", yLabel: "y", x: [0, 1, 2], y: [0, 2, 1])
        plot.width = 500; plot.height = 400
        plot.margins = Margins(left: 50, right: 50, top: 50, bottom: 50)
        plot.xRange = 0 ... 2; plot.yRange = 0 ... 2
        let doc = try SVGDocument(plot.render())
        let circles = doc.all("circle").map { SIMD2(Double($0.attributes["cx"]!)!, Double($0.attributes["cy"]!)!) }
        XCTAssertEqual(circles, [SIMD2(50, 350), SIMD2(250, 50), SIMD2(450, 200)])
    }

    func testParityPlotOfManyPointsIsAHeatMapOfBoundedSize() throws {
        // 200 000 points along y = x + noise: deterministic pseudo-random numbers.
        var state: UInt64 = 42
        func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53)
        }
        let n = 200_000
        let ref = (0 ..< n).map { _ in next() * 20 - 10 }
        let pred = ref.map { $0 + (next() - 0.5) * 0.2 }
        let plot = ScatterPlot.parity(reference: ref, predicted: pred, unit: "eV", mae: 0.05, maeScale: 1000, maeUnit: "meV")
        XCTAssertTrue(plot.usesHistogram)
        let counts = plot.histogram(bins: 90)
        XCTAssertEqual(counts.joined().reduce(0, +), n, "every point lies inside the padded range")
        let svg = plot.render()
        XCTAssertLessThan(svg.utf8.count, 600_000)
        let doc = try SVGDocument(svg)
        XCTAssertTrue(doc.texts.contains("MAE 50 meV"))
        XCTAssertTrue(doc.texts.contains("N = 200000"))
        let heat = doc.all("rect").count
        XCTAssertGreaterThan(heat, 90)
        XCTAssertLessThanOrEqual(heat, 90 * 90 + 40)
        // The identity line runs corner to corner of the shared range.
        let identity = try XCTUnwrap(doc.all("line").first { $0.attributes["class"] == "identity" })
        let frame = plot.frame
        XCTAssertEqual(Double(identity.attributes["x1"]!)!, frame.left, accuracy: 0.01)
        XCTAssertEqual(Double(identity.attributes["y1"]!)!, frame.bottom, accuracy: 0.01)
        XCTAssertEqual(Double(identity.attributes["x2"]!)!, frame.right, accuracy: 0.01)
        XCTAssertEqual(Double(identity.attributes["y2"]!)!, frame.top, accuracy: 0.01)
    }

    func testHistogramBinsKnownPoints() {
        var plot = ScatterPlot(xLabel: "x", yLabel: "y", x: [0.1, 0.9, 0.95, 1.0, 2.0], y: [0.1, 0.1, 0.9, 1.0, 0.5])
        plot.xRange = 0 ... 1; plot.yRange = 0 ... 1
        let h = plot.histogram(bins: 2)
        // (0.1,0.1) bottom-left; (0.9,0.1) bottom-right; (0.95,0.9) and the corner (1,1) top-right;
        // x = 2 is outside.
        XCTAssertEqual(h, [[1, 1], [0, 2]])
    }
}

final class LearningCurveTests: XCTestCase {
    let text = """
    {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "lr": 0.001, "elapsed_s": 10.5, "improved": true}
    {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "lr": 0.001, "elapsed_s": 20.1}

    {"epoch": 3, "train_loss": 0.25, "val_loss": 0.8, "lr": 0.0005, "elapsed_s": 30.0}
    """

    func testParseAndChart() throws {
        let curve = try LearningCurve.parse(text)
        XCTAssertEqual(curve.epochs.count, 3)
        XCTAssertEqual(curve.keys, ["elapsed_s", "lr", "train_loss", "val_loss"])
        XCTAssertEqual(curve.lossKeys, ["train_loss", "val_loss"])
        XCTAssertEqual(curve.best("val_loss")?.epoch, 2)
        XCTAssertEqual(curve.epochs[2].values["lr"], 0.0005)
        let chart = curve.chart()
        XCTAssertTrue(chart.logY)
        XCTAssertEqual(chart.verticalMarkers.first?.x, 2)
        let doc = try SVGDocument(chart.render())
        let train = try XCTUnwrap(doc.all("polyline").first { $0.attributes["data-series"] == "train_loss" })
        let frame = chart.frame
        let p = points(train.attributes["points"])
        XCTAssertEqual(p.count, 3)
        XCTAssertEqual(p[1].x, frame.px(2), accuracy: 0.006)
        XCTAssertEqual(p[1].y, frame.py(0.5), accuracy: 0.006)
        XCTAssertTrue(doc.texts.contains("best val_loss @ 2"))
    }

    func testEmptyAndNonPositiveCurvesStillRender() throws {
        _ = try SVGDocument(LearningCurve(epochs: []).chart().render())
        _ = try SVGDocument(LineChart(xLabel: "x", yLabel: "y").render())
        _ = try SVGDocument(ScatterPlot.parity(reference: [], predicted: [], unit: "eV").render())
        // A zero loss cannot go on a log axis: the chart falls back to linear.
        let curve = try LearningCurve.parse("{\"epoch\": 0, \"train_loss\": 0}\n{\"epoch\": 1, \"train_loss\": 0.5}")
        XCTAssertFalse(curve.chart().logY)
    }

    func testFileRoundTripAndErrors() throws {
        let dir = try makeTemporaryDirectory(self)
        let jsonl = dir.appendingPathComponent("learning_curve.jsonl")
        try Data(text.utf8).write(to: jsonl)
        let svg = dir.appendingPathComponent("learning_curve.svg")
        try LearningCurve.plot(jsonLines: jsonl, to: svg)
        _ = try SVGDocument(try String(contentsOf: svg, encoding: .utf8))

        XCTAssertThrowsError(try LearningCurve.parse("{\"epoch\": 1}\n{\"train_loss\": 2}", file: "lc.jsonl")) { e in
            XCTAssertEqual("\(e)", "lc.jsonl: line 2: epoch: missing or not an integer")
        }
        XCTAssertThrowsError(try LearningCurve.parse("{\"epoch\": 1, \"val_loss\": 1}\nnot json", file: "lc.jsonl")) { e in
            XCTAssertEqual("\(e)", "lc.jsonl: line 2: not a JSON object")
        }
        XCTAssertThrowsError(try LearningCurve.read(dir.appendingPathComponent("absent.jsonl"))) { e in
            XCTAssertTrue("\(e)".contains("absent.jsonl"))
        }
    }
}
