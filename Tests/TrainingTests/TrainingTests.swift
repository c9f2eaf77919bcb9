import XCTest

final class TrainingPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
