// Memo.swift: a thread-safe table of computed values by key, for tables that are pure functions of
// their key (Clebsch–Gordan and Gaunt coefficients, FFT twiddles, harmonic polynomials) and are
// built on first use by whichever thread needs them. It is what replaces a lock next to a
// `nonisolated(unsafe) static var` dictionary: the lock and the storage are one Sendable object.
import Foundation

public final class Memo<Key: Hashable & Sendable, Value: Sendable>: @unchecked Sendable {
    // @unchecked: `values` is read and written only while `lock` is held.
    private let lock = NSLock()
    private var values: [Key: Value] = [:]

    public init() {}

    /// The stored value for `key`, else `make()`'s, stored. `make` runs outside the lock (it may
    /// take long or use other memos); when two threads make the same key at once both compute it
    /// and the first stored value wins, so every caller gets the same value.
    public func value(_ key: Key, _ make: () throws -> Value) rethrows -> Value {
        lock.lock()
        if let v = values[key] { lock.unlock(); return v }
        lock.unlock()
        let v = try make()
        lock.lock(); defer { lock.unlock() }
        if let first = values[key] { return first }
        values[key] = v
        return v
    }
}
