// CSV files of features: one sample per line, comma, tab or semicolon separated (the first line tells), double
// quotes around a field allowed; a header line when the first line names its columns; at most one label column
// (numbers or text), chosen by name or index or found by itself. Missing or non-finite values are errors that name
// the line and the column.
import Foundation
import Tensor

public struct CSVTable: Sendable {
    public enum LabelColumn: Sendable, Equatable {
        /// A column named label, class, target, y, ... or else the one column that holds text; none if neither.
        case automatic
        case none
        case name(String)
        /// 0-based; -1 is the last column.
        case index(Int)

        public init(parsing text: String) {
            switch text.lowercased() {
            case "auto", "automatic": self = .automatic
            case "none": self = .none
            case "last": self = .index(-1)
            default: self = Int(text).map { .index($0) } ?? .name(text)
            }
        }
    }

    public var features: [Float]      // (N, D)
    public var count: Int
    public var dimension: Int
    public var header: [String]?
    /// Each row's label text, when there is a label column.
    public var labels: [String]?
    /// The label column as the user would name it (for notes), nil when there is none.
    public var labelColumnName: String?

    public static let largestBytes = 4 << 30
    static let labelNames: Set = ["label", "labels", "class", "classes", "target", "y", "category", "digit", "species"]

    public static func read(_ path: String, labelColumn: LabelColumn) throws -> CSVTable {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), let size = attributes[.size] as? Int else {
            throw DataError(path, "file not found")
        }
        if size > largestBytes { throw DataError(path, "\(size) bytes: larger than the \(largestBytes >> 30) GiB this reader takes") }
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(path, "cannot read the file") }
        return try parse(String(decoding: data, as: UTF8.self), path: path, labelColumn: labelColumn)
    }

    /// Splits one line at `separator`, honouring double quotes ("" inside quotes is a quote).
    static func fields(_ line: Substring, separator: Character) -> [String] {
        var result: [String] = [], current = "", quoted = false
        var iterator = line.makeIterator()
        var pending: Character? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { current.append("\"") } else { quoted = false; pending = next }
                    } else { quoted = false }
                } else { current.append(c) }
            } else if c == "\"" && current.trimmingCharacters(in: .whitespaces).isEmpty {
                quoted = true
                current = ""
            } else if c == separator {
                result.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else { current.append(c) }
        }
        result.append(current.trimmingCharacters(in: .whitespaces))
        return result
    }

    static func number(_ text: String) -> Float? { Float(text) }

    public static func parse(_ text: String, path: String, labelColumn: LabelColumn) throws -> CSVTable {
        // Lines with their 1-based numbers, blank ones left out.
        var lines: [(number: Int, text: Substring)] = []
        var lineNumber = 0
        // "\r\n" is one Character in Swift: each line ending is its own separator.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            lineNumber += 1
            if !line.trimmingCharacters(in: .whitespaces).isEmpty { lines.append((lineNumber, line)) }
        }
        guard let first = lines.first else { throw DataError(path, "no data: the file is empty") }
        let separator: Character = [",", "\t", ";"].max { a, b in
            first.text.filter { $0 == a }.count < first.text.filter { $0 == b }.count
        }.flatMap { c in first.text.contains(c) ? c : nil } ?? ","
        let rows = lines.map { fields($0.text, separator: separator) }
        let columns = rows[0].count
        for (i, row) in rows.enumerated() where row.count != columns {
            throw DataError(path, "line \(lines[i].number) has \(row.count) fields, line \(lines[0].number) has \(columns) "
                            + "(separator '\(separator == "\t" ? "\\t" : String(separator))')")
        }
        // A header: the first line has text where the second has a number, or a label column is asked for by name.
        var hasHeader = false
        if rows.count >= 2 {
            hasHeader = (0..<columns).contains { number(rows[0][$0]) == nil && number(rows[1][$0]) != nil }
        }
        if case .name = labelColumn { hasHeader = true }
        let header = hasHeader ? rows[0] : nil
        let body = hasHeader ? Array(rows.dropFirst()) : rows
        let bodyLines = hasHeader ? Array(lines.dropFirst()) : lines
        if rows.count == 1, (0..<columns).allSatisfy({ number(rows[0][$0]) == nil }) {
            throw DataError(path, "holds only a header line and no samples: clustering needs at least 2")
        }
        guard body.count >= 2 else { throw DataError(path, "\(body.count) data line(s): clustering needs at least 2 samples") }

        // The label column.
        var label: Int? = nil
        switch labelColumn {
        case .none: break
        case .index(let i):
            let j = i < 0 ? columns + i : i
            guard (0..<columns).contains(j) else {
                throw DataError(path, "--label-column \(i): the file has \(columns) columns (0...\(columns - 1), or -1 for the last)")
            }
            label = j
        case .name(let name):
            guard let j = header?.firstIndex(where: { $0 == name }) ?? header?.firstIndex(where: { $0.lowercased() == name.lowercased() }) else {
                throw DataError(path, "no column named '\(name)'; the header has: \(rows[0].prefix(12).joined(separator: ", "))\(columns > 12 ? ", ..." : "")")
            }
            label = j
        case .automatic:
            if let header, let j = header.firstIndex(where: { labelNames.contains($0.lowercased()) }) {
                label = j
            } else {
                let textual = (0..<columns).filter { j in body.prefix(200).contains { number($0[j]) == nil } }
                if textual.count == 1 { label = textual[0] }
                if textual.count > 1 {
                    let names = textual.prefix(5).map { j in header.map { "'\($0[j])'" } ?? "\(j)" }.joined(separator: ", ")
                    throw DataError(path, "columns \(names) hold text: name the label column with --label-column, and remove other text columns")
                }
            }
        }
        let dimension = columns - (label == nil ? 0 : 1)
        guard dimension >= 1 else { throw DataError(path, "no feature columns besides the label column") }
        var features = [Float](repeating: 0, count: body.count * dimension)
        var labels: [String]? = label == nil ? nil : []
        labels?.reserveCapacity(body.count)
        for (i, row) in body.enumerated() {
            var d = 0
            for (j, field) in row.enumerated() {
                if j == label { labels!.append(field); continue }
                guard let value = number(field), value.isFinite else {
                    let column = header.map { "column \(j) ('\($0[j])')" } ?? "column \(j)"
                    let shown = field.isEmpty ? "an empty field" : "'\(field.prefix(30))'"
                    throw DataError(path, "line \(bodyLines[i].number), \(column): \(shown) is not a finite number; "
                                    + "missing values are not supported: fill or drop them first")
                }
                features[i * dimension + d] = value
                d += 1
            }
        }
        if let labels, let j = label, let empty = labels.firstIndex(where: { $0.isEmpty }) {
            throw DataError(path, "line \(bodyLines[empty].number): the label (column \(j)) is empty")
        }
        return CSVTable(features: features, count: body.count, dimension: dimension, header: header, labels: labels,
                        labelColumnName: label.map { j in header.map { "'\($0[j])' (column \(j))" } ?? "column \(j)" })
    }
}

/// Labels of any kind (integers or text) as dense class indices 0..<C, with the original names kept.
public struct LabelSet: Sendable {
    public var indices: [Int32]
    public var names: [String]

    /// Integers sort numerically, text alphabetically.
    public init(_ texts: [String]) {
        let distinct = Set(texts)
        let numeric = distinct.allSatisfy { Int($0) != nil }
        names = numeric ? distinct.sorted { Int($0)! < Int($1)! } : distinct.sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, Int32($0.offset)) })
        indices = texts.map { index[$0]! }
    }
}
