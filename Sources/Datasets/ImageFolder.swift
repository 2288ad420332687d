// Folders of PNG and JPEG images as a data set (torchvision's ImageFolder layout: root/<class>/<file>, or one flat
// folder without labels). Files are taken in natural path order (img2 before img10), so every rank and every run sees
// the same samples in the same order. The ranks split the work: each reads the headers and decodes the pixels of a
// contiguous share of the files on its threads, and the shares are gathered in rank order, so the bytes are the
// same on any rank and thread count. Every error is found by the rank that meets it and reported by all of them at
// the next exchange, so no rank waits for one that gave up.
internal import CImageCodecs
import Foundation
import Tensor

/// Width, height and channels of image samples; channels are stored one plane after another (C x H x W).
public struct ImageShape: Sendable, Equatable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public var channels: Int
    public init(width: Int, height: Int, channels: Int) {
        self.width = width
        self.height = height
        self.channels = channels
    }
    public var pixels: Int { width * height }
    public var values: Int { width * height * channels }
    public var description: String { "\(width)x\(height) \(channels == 3 ? "RGB" : "grey")" }
}

/// How the ranks share a read: this rank, the rank count, and a gather of every rank's bytes in rank order.
public struct ReadShare {
    public var rank: Int
    public var size: Int
    public var gather: ([UInt8]) throws -> [UInt8]
    public init(rank: Int, size: Int, gather: @escaping ([UInt8]) throws -> [UInt8]) {
        self.rank = rank
        self.size = size
        self.gather = gather
    }
    public static var whole: ReadShare { ReadShare(rank: 0, size: 1, gather: { $0 }) }

    /// This rank's contiguous share of `count` items.
    func range(_ count: Int) -> Range<Int> { ReadShare.piece(rank, of: size, count) }

    /// Piece `part` of `parts` contiguous pieces of `count` items (the first `count % parts` take one more).
    static func piece(_ part: Int, of parts: Int, _ count: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }
}

public struct ImageFolderOptions {
    /// The samples' size (--image-size); nil: the size most images have.
    public var width: Int?
    public var height: Int?
    /// 1 or 3 (--channels); nil: 1 when every image is grey, else 3.
    public var channels: Int?
    /// The first `limit` files only.
    public var limit: Int?
    /// A model's input width (predict): the size and channels it implies, when they are not given.
    public var expectedDimension: Int?
    /// Decoding threads of this rank.
    public var threads: Int
    /// Called on rank 0 with (files done over all ranks, estimated, and the total).
    public var progress: ((Int, Int) -> Void)?

    public init(width: Int? = nil, height: Int? = nil, channels: Int? = nil, limit: Int? = nil,
                expectedDimension: Int? = nil, threads: Int = 1, progress: ((Int, Int) -> Void)? = nil) {
        self.width = width
        self.height = height
        self.channels = channels
        self.limit = limit
        self.expectedDimension = expectedDimension
        self.threads = threads
        self.progress = progress
    }
}

public enum ImageFolder {
    /// File name endings read as images.
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]
    /// An image that declares more pixels than this is refused before it is decoded.
    public static let largestPixels = 50_000_000
    /// Files larger than this are refused unread.
    public static let largestFileBytes = 512 << 20
    /// The default size's longer side is brought down to this when the images are larger (the input width of the
    /// autoencoder grows with the pixels).
    public static let defaultLongestSide = 64
    static let headerPrefixBytes = 1 << 16

    /// Whether `directory` holds images rather than the MNIST layout's IDX files.
    public static func isImageFolder(_ directory: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return !names.contains { $0.hasPrefix("t10k-images-idx3-ubyte") || $0.hasPrefix("train-images-idx3-ubyte") }
    }

    // MARK: - Listing

    /// The image files under `root` (relative paths, natural order), and what was passed over.
    public static func list(_ root: String) throws -> (files: [String], notes: [String]) {
        var files: [String] = []
        var others = 0, hidden = 0, broken = 0
        var loops: [String] = []
        var visited = Set<[UInt64]>()
        func identity(_ path: String) -> [UInt64]? {
            var status = stat()
            guard stat(path, &status) == 0 else { return nil }
            return [UInt64(status.st_dev), UInt64(status.st_ino)]
        }
        func walk(_ relative: String, depth: Int) throws {
            let path = relative.isEmpty ? root : root + "/" + relative
            guard let id = identity(path) else { broken += 1; return }
            guard visited.insert(id).inserted else { loops.append(relative); return }
            guard depth <= 32 else { throw DataError(path, "folders nested more than 32 deep") }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
                throw DataError(path, "cannot be listed (\(error.localizedDescription))")
            }
            for name in names {
                if name.hasPrefix(".") { hidden += 1; continue }
                let child = relative.isEmpty ? name : relative + "/" + name
                var status = stat()
                guard stat(root + "/" + child, &status) == 0 else { broken += 1; continue }
                if (status.st_mode & S_IFMT) == S_IFDIR {
                    try walk(child, depth: depth + 1)
                } else if (status.st_mode & S_IFMT) == S_IFREG, extensions.contains(URL(fileURLWithPath: name).pathExtension.lowercased()) {
                    files.append(child)
                } else {
                    others += 1
                }
            }
        }
        try walk("", depth: 0)
        files.sort(by: naturalOrder)
        var notes: [String] = []
        if others > 0 { notes.append("\(others) file(s) that are not .png/.jpg/.jpeg passed over") }
        if broken > 0 { notes.append("\(broken) entr\(broken == 1 ? "y" : "ies") that cannot be opened (broken links) passed over") }
        if !loops.isEmpty {
            notes.append("\(loops.count) link(s) back to a folder already read passed over (\(loops.prefix(3).joined(separator: ", ")))")
        }
        return (files, notes)
    }

    /// Natural order: runs of digits compare as numbers (img2 < img10), the rest by Unicode scalars.
    public static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        var i = 0, j = 0
        func isDigit(_ s: Unicode.Scalar) -> Bool { s.value >= 48 && s.value <= 57 }
        while i < x.count && j < y.count {
            if isDigit(x[i]) && isDigit(y[j]) {
                var ie = i, je = j
                while ie < x.count && isDigit(x[ie]) { ie += 1 }
                while je < y.count && isDigit(y[je]) { je += 1 }
                // Without leading zeros, a longer run is a larger number; equal lengths compare digit by digit.
                var iz = i, jz = j
                while iz < ie - 1 && x[iz].value == 48 { iz += 1 }
                while jz < je - 1 && y[jz].value == 48 { jz += 1 }
                if ie - iz != je - jz { return ie - iz < je - jz }
                for k in 0..<(ie - iz) where x[iz + k] != y[jz + k] { return x[iz + k].value < y[jz + k].value }
                if ie - i != je - j { return ie - i < je - j }  // "01" after "1"
                i = ie
                j = je
            } else {
                if x[i] != y[j] { return x[i].value < y[j].value }
                i += 1
                j += 1
            }
        }
        return x.count - i < y.count - j
    }

    // MARK: - Reading

    /// The images under `directory` as bytes (N x C*H*W, channels as planes), labels from the first level of
    /// subfolders when every image sits in one, the relative paths as the samples' names.
    public static func load(directory: String, options: ImageFolderOptions, share: ReadShare = .whole) throws -> DataSet {
        // Every rank lists the folder; the exchange checks that they saw the same files before any share is read.
        var listed: (files: [String], notes: [String]) = ([], [])
        var listError: String? = nil
        do { listed = try list(directory) } catch { listError = "\(error)" }
        var files = listed.files
        if let limit = options.limit, files.count > limit { files = Array(files[0..<limit]) }
        let fingerprint = files.reduce(into: UInt64(0xcbf2_9ce4_8422_2325)) { hash, name in
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            hash = (hash ^ 0x2f) &* 0x100_0000_01b3
        }
        let listing = try exchange(Report(numbers: [files.count, Int(truncatingIfNeeded: fingerprint)], message: listError), share)
        if let message = listing.firstMessage { throw RunError(message, everyRank: true) }
        if Set(listing.reports.map { $0.numbers }).count > 1 {
            throw RunError("\(directory): the ranks see different files (\(listing.reports.map { String($0.numbers[0]) }.joined(separator: " / ")) images); "
                           + "give a folder every host reads the same", everyRank: true)
        }
        guard !files.isEmpty else {
            throw RunError("\(directory): no .png, .jpg or .jpeg files in it or its subfolders" + (listed.notes.isEmpty ? "" : " (\(listed.notes.joined(separator: "; ")))"), everyRank: true)
        }
        guard files.count >= 2 else { throw RunError("\(directory): one image; clustering needs at least 2", everyRank: true) }

        // Headers: each rank its share, gathered as (width, height, components) per file.
        let mine = share.range(files.count)
        var headers = [Int](repeating: 0, count: 3 * mine.count)
        let headerError = headers.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress else { return nil }  // a rank with no share
            let out = SharedPointer(base)
            return forEach(mine, threads: options.threads) { index, _ in
                let info = try header(directory + "/" + files[index])
                let r = 3 * (index - mine.lowerBound)
                out.base[r] = info.width
                out.base[r + 1] = info.height
                out.base[r + 2] = info.components
            }
        }
        let gathered = try exchange(Report(numbers: headerError == nil ? headers : [], message: headerError), share)
        if let message = gathered.firstMessage { throw RunError(message, everyRank: true) }
        let all = gathered.reports.flatMap { $0.numbers }
        let sizes = (0..<files.count).map { [all[3 * $0], all[3 * $0 + 1]] }
        let anyColour = (0..<files.count).contains { all[3 * $0 + 2] == 3 }

        var notes = listed.notes
        let shape = chooseShape(sizes: sizes, anyColour: anyColour, options: options, notes: &notes)

        // Pixels: each rank decodes its share into C x H x W planes.
        var pixels = [UInt8](repeating: 0, count: mine.count * shape.values)
        var flags = [Int](repeating: 0, count: mine.count)
        let progress = share.rank == 0 ? options.progress : nil
        let pixelError = pixels.withUnsafeMutableBufferPointer { out -> String? in
            flags.withUnsafeMutableBufferPointer { flagBuffer -> String? in
                guard let base = out.baseAddress, let flagBase = flagBuffer.baseAddress else { return nil }
                let target = SharedPointer(base), flagTarget = SharedPointer(flagBase)
                return forEach(mine, threads: options.threads, progress: progress.map { report in
                    { done in report(min(done * share.size, files.count), files.count) }
                }) { index, scratch in
                    let r = index - mine.lowerBound
                    flagTarget.base[r] = try decode(directory + "/" + files[index], into: target.base + r * shape.values, shape: shape,
                                                    native: (all[3 * index], all[3 * index + 1]), scratch: &scratch)
                }
            }
        }
        let alpha = flags.filter { $0 & Int(DC_IMAGE_HAD_ALPHA) != 0 }.count
        let allGrey = flags.allSatisfy { $0 & Int(DC_IMAGE_GREY_CONTENT) != 0 } ? 1 : 0
        let decoded = try exchange(Report(numbers: [alpha, allGrey], message: pixelError), share)
        if let message = decoded.firstMessage { throw RunError(message, everyRank: true) }
        var finalShape = shape
        if options.channels == nil, shape.channels == 3, decoded.reports.allSatisfy({ $0.numbers[1] == 1 }) {
            // Colour files whose pixels are all grey: one plane is the image.
            pixels = (0..<mine.count).flatMap { pixels[($0 * shape.values)..<($0 * shape.values + shape.pixels)] }
            finalShape.channels = 1
            notes.append("every image is grey (some stored as colour): one channel")
        }
        let transparent = decoded.reports.reduce(0) { $0 + $1.numbers[0] }
        if transparent > 0 { notes.append("\(transparent) image(s) with transparency: composited onto white") }
        let images = share.size > 1 ? try share.gather(pixels) : pixels
        guard images.count == files.count * finalShape.values else {
            throw RunError("\(directory): the gathered pixels do not add up (\(images.count) bytes)", everyRank: true)
        }

        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        var data = DataSet(name: name, images: images, labels: [Int32](repeating: 0, count: files.count),
                           dimension: finalShape.values, classCount: 1)
        data.isImage = true
        data.imageShape = finalShape
        data.sampleNames = files
        notes.append(label(&data, by: files))
        if listed.files.count > files.count {
            let classes = data.hasLabels ? " (\(data.classCount) of the folder's classes)" : ""
            notes.append("--limit \(files.count): the first \(files.count) of \(listed.files.count) files in path order\(classes)")
        }
        notes.insert("\(name): \(files.count) images read as \(finalShape), values / 255", at: 0)
        data.notes = notes
        return data
    }

    /// The samples' shape: as asked, else the one a model's input width implies, else the most common size (its
    /// longer side brought down to `defaultLongestSide`); notes say what was chosen and how many images are resized.
    static func chooseShape(sizes: [[Int]], anyColour: Bool, options: ImageFolderOptions, notes: inout [String]) -> ImageShape {
        var counts: [[Int]: Int] = [:]
        for size in sizes { counts[size, default: 0] += 1 }
        let common = counts.max { a, b in a.value != b.value ? a.value < b.value : a.key.lexicographicallyPrecedes(b.key) }!.key
        var shape = ImageShape(width: options.width ?? common[0], height: options.height ?? common[1],
                               channels: options.channels ?? (anyColour ? 3 : 1))
        if options.width == nil, let expected = options.expectedDimension {
            if let layout = Augmentation.imageLayout(of: expected), options.channels == nil || options.channels == layout.planes,
               layout.side * layout.side * layout.planes != shape.values {
                shape = ImageShape(width: layout.side, height: layout.side, channels: layout.planes)
                notes.append("images read as \(shape) as the model expects \(expected) inputs")
            }
        } else if options.width == nil, max(shape.width, shape.height) > defaultLongestSide {
            let scale = Double(defaultLongestSide) / Double(max(shape.width, shape.height))
            shape.width = max(1, Int((Double(shape.width) * scale).rounded()))
            shape.height = max(1, Int((Double(shape.height) * scale).rounded()))
            notes.append("most images are \(common[0])x\(common[1]): brought down to \(shape.width)x\(shape.height) (--image-size S to choose)")
        }
        let other = sizes.filter { $0 != [shape.width, shape.height] }.count
        if other > 0 {
            notes.append("\(other) of \(sizes.count) images are not \(shape.width)x\(shape.height): resized to it (bilinear, averaging "
                         + "when shrinking; the aspect ratio is not kept)")
        }
        return shape
    }

    /// Labels `data` by the first folder of each path when every image sits in one and there are at least two;
    /// returns the note that says where the labels came from, or why there are none.
    static func label(_ data: inout DataSet, by files: [String]) -> String {
        data.hasLabels = false
        let folders = files.map { $0.split(separator: "/", maxSplits: 1) }
        guard folders.allSatisfy({ $0.count == 2 }) else {
            return folders.contains(where: { $0.count == 2 })
                ? "some images sit in \(data.name) itself, others in subfolders: no labels (put every image in a class folder for them)"
                : "a flat folder: no labels (one subfolder per class gives them)"
        }
        let set = LabelSet(folders.map { String($0[0]) })
        guard set.names.count >= 2 else {
            return "every image sits in one subfolder (\(set.names[0])): one class, so no labels and no ACC/NMI/ARI"
        }
        data.labels = set.indices
        data.classCount = set.names.count
        data.classNames = set.names
        data.hasLabels = true
        return "labels from the \(set.names.count) subfolders of \(data.name) (\(set.names.prefix(6).joined(separator: ", "))"
            + "\(set.names.count > 6 ? ", ..." : ""))"
    }

    // MARK: - One file

    /// The header of one image file: (width, height, components); refused when it declares too many pixels.
    static func header(_ path: String) throws -> (width: Int, height: Int, components: Int) {
        var bytes = try read(path, prefix: headerPrefixBytes)
        var info = dc_image_info()
        var message = [CChar](repeating: 0, count: 256)
        var status = bytes.withUnsafeBufferPointer { dc_image_header($0.baseAddress, $0.count, &info, &message, message.count) }
        if status != 0 && bytes.count == headerPrefixBytes {
            bytes = try read(path, prefix: nil)  // a header beyond the first 64 KiB (a large EXIF block)
            status = bytes.withUnsafeBufferPointer { dc_image_header($0.baseAddress, $0.count, &info, &message, message.count) }
        }
        guard status == 0 else { throw DataError(path, text(message)) }
        guard info.width > 0, info.height > 0 else { throw DataError(path, "declares an empty image (\(info.width)x\(info.height))") }
        guard Int(info.width) <= largestPixels / Int(info.height) else {
            throw DataError(path, "declares \(info.width)x\(info.height) pixels, more than \(largestPixels / 1_000_000) megapixels: refused before decoding (shrink it first)")
        }
        return (Int(info.width), Int(info.height), Int(info.components))
    }

    /// Decodes one file at its own size, then writes it as `shape` (resized when it differs) in planes. Returns the
    /// codec's flags.
    static func decode(_ path: String, into out: UnsafeMutablePointer<UInt8>, shape: ImageShape, native: (Int, Int),
                       scratch: inout [UInt8]) throws -> Int {
        let bytes = try read(path, prefix: nil)
        let (w, h) = native
        let count = w * h * shape.channels
        if scratch.count < count { scratch = [UInt8](repeating: 0, count: count) }
        var flags: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { input in
            scratch.withUnsafeMutableBufferPointer {
                dc_image_decode(input.baseAddress, input.count, Int32(shape.channels), $0.baseAddress, count, &flags, &message, message.count)
            }
        }
        guard status == 0 else { throw DataError(path, text(message)) }
        scratch.withUnsafeBufferPointer { source in
            for c in 0..<shape.channels {
                let plane = out + c * shape.pixels
                if w == shape.width && h == shape.height {
                    for p in 0..<(w * h) { plane[p] = source[p * shape.channels + c] }
                } else {
                    resize(source.baseAddress! + c, stride: shape.channels, width: w, height: h, into: plane,
                           width: shape.width, height: shape.height)
                }
            }
        }
        return Int(flags)
    }

    /// Resampling of one channel (every `stride`-th byte): a box filter when shrinking (each target pixel the mean of
    /// the source area it covers), bilinear when enlarging.
    public static func resize(_ source: UnsafePointer<UInt8>, stride: Int, width: Int, height: Int,
                              into target: UnsafeMutablePointer<UInt8>, width outWidth: Int, height outHeight: Int) {
        func taps(_ from: Int, _ to: Int) -> [(start: Int, weights: [Float])] {
            let scale = Double(from) / Double(to)
            return (0..<to).map { i in
                if scale >= 1 {
                    // The source interval [i * scale, (i + 1) * scale), each pixel weighted by its overlap.
                    let a = Double(i) * scale, b = Double(i + 1) * scale
                    let lo = Int(a.rounded(.down)), hi = min(from, Int(b.rounded(.up)))
                    let weights = (lo..<hi).map { j in Float((min(b, Double(j + 1)) - max(a, Double(j))) / scale) }
                    return (lo, weights)
                }
                let centre = (Double(i) + 0.5) * scale - 0.5
                let lo = max(0, min(from - 1, Int(centre.rounded(.down))))
                let hi = min(from - 1, lo + 1)
                let f = Float(max(0, min(1, centre - Double(lo))))
                return hi == lo ? (lo, [1]) : (lo, [1 - f, f])
            }
        }
        let across = taps(width, outWidth), down = taps(height, outHeight)
        var rows = [Float](repeating: 0, count: height * outWidth)
        for y in 0..<height {
            for (x, tap) in across.enumerated() {
                var sum: Float = 0
                for (k, weight) in tap.weights.enumerated() { sum += weight * Float(source[(y * width + tap.start + k) * stride]) }
                rows[y * outWidth + x] = sum
            }
        }
        for (y, tap) in down.enumerated() {
            for x in 0..<outWidth {
                var sum: Float = 0
                for (k, weight) in tap.weights.enumerated() { sum += weight * rows[(tap.start + k) * outWidth + x] }
                target[y * outWidth + x] = UInt8(max(0, min(255, sum.rounded())))
            }
        }
    }

    /// A file's bytes (the first `prefix` of them when given), refused when larger than any image we take.
    static func read(_ path: String, prefix: Int?) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw DataError(path, "cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw DataError(path, "cannot be read") }
        let size = Int(status.st_size)
        guard size <= largestFileBytes else { throw DataError(path, "\(size >> 20) MB: larger than any image this reads (\(largestFileBytes >> 20) MB)") }
        guard size > 0 else { throw DataError(path, "an empty file") }
        let wanted = min(size, prefix ?? size)
        var bytes = [UInt8](repeating: 0, count: wanted)
        var done = 0
        while done < wanted {
            let n = bytes.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress! + done, wanted - done) }
            guard n > 0 else { if n < 0 && errno == EINTR { continue }; break }
            done += n
        }
        guard done == wanted else { throw DataError(path, "could be read only in part") }
        return bytes
    }

    /// A baseline JPEG of `pixels` (height x width x channels interleaved, channels 1 or 3) at `quality` 1-100.
    public static func jpeg(width: Int, height: Int, channels: Int, pixels: [UInt8], quality: Int = 95) throws -> [UInt8] {
        precondition(pixels.count == width * height * channels && (channels == 1 || channels == 3))
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = pixels.withUnsafeBufferPointer {
            dc_jpeg_encode($0.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality), &out, &size, &message, message.count)
        }
        defer { dc_image_free(out) }
        guard status == 0, let out else { throw RunError("JPEG encoding failed: \(text(message))") }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    static func text(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - Threads and exchanges

    /// Runs `body` for every index of `range` on `threads` threads (contiguous pieces); returns the error of the
    /// lowest index that failed, as text, or nil.
    static func forEach(_ range: Range<Int>, threads: Int, progress: ((Int) -> Void)? = nil,
                        _ body: (Int, inout [UInt8]) throws -> Void) -> String? {
        let workers = max(1, min(threads, range.count / 64))
        let errors = ErrorSlots(workers)
        let done = Counter()
        withoutActuallyEscaping(body) { body in
            let run = UnsafeSendable(body), report = UnsafeSendable(progress)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let piece = ReadShare.piece(w, of: workers, range.count)
                var scratch: [UInt8] = []
                for offset in piece {
                    do { try run.value(range.lowerBound + offset, &scratch) } catch {
                        errors.set(w, "\(error)")
                        return
                    }
                    let total = done.add(1)
                    if w == 0, let progress = report.value, total % 256 == 0 { progress(total) }
                }
            }
        }
        progress?(range.count)
        return errors.first
    }

    /// A rank's contribution to an exchange: some numbers, and an error message when it failed.
    struct Report {
        var numbers: [Int]
        var message: String?
    }

    /// Every rank's report, in rank order (each as: count of numbers, numbers, message bytes; length-prefixed).
    static func exchange(_ report: Report, _ share: ReadShare) throws -> (reports: [Report], firstMessage: String?) {
        guard share.size > 1 else { return ([report], report.message) }
        var body: [UInt8] = []
        func put(_ value: Int) { withUnsafeBytes(of: Int64(value).littleEndian) { body += $0 } }
        put(report.numbers.count)
        report.numbers.forEach(put)
        body += Array((report.message ?? "").utf8)
        var framed: [UInt8] = []
        withUnsafeBytes(of: Int64(body.count).littleEndian) { framed += $0 }
        framed += body
        let all = try share.gather(framed)
        var reports: [Report] = []
        var offset = 0
        func take() -> Int {
            var value: Int64 = 0
            withUnsafeMutableBytes(of: &value) { for k in 0..<8 { $0[k] = all[offset + k] } }
            offset += 8
            return Int(Int64(littleEndian: value))
        }
        while offset < all.count {
            let length = take(), end = offset + length
            let count = take()
            let numbers = (0..<count).map { _ in take() }
            let message = String(decoding: all[offset..<end], as: UTF8.self)
            offset = end
            reports.append(Report(numbers: numbers, message: message.isEmpty ? nil : message))
        }
        return (reports, reports.lazy.compactMap { $0.message }.first)
    }
}

/// The first error (by worker) of a parallel loop.
private final class ErrorSlots: @unchecked Sendable {
    private var slots: [String?]
    private let lock = NSLock()
    init(_ count: Int) { slots = [String?](repeating: nil, count: count) }
    func set(_ index: Int, _ message: String) { lock.lock(); slots[index] = message; lock.unlock() }
    var first: String? { slots.lazy.compactMap { $0 }.first }
}

private final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func add(_ n: Int) -> Int { lock.lock(); defer { lock.unlock() }; value += n; return value }
}

private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
