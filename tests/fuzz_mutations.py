"""Mutations of files for the fuzz tests and `make fuzz`, each described by a small JSON-able recipe.

Byte-level operations overwrite, zero, insert, delete, duplicate or cut bytes at a position; structure-aware
ones rewrite a box's size field, drop, duplicate or swap boxes, or overwrite a field with an extreme value. A
position is either a fraction of the file (`at`) or an offset from the start of a named node (`node`,
`offset`), so that a recipe keeps hitting the same structure when the file's bytes move. Nodes are the boxes
of MP4/MOV (ISO BMFF), the chunks of AVI (RIFF) and the elements of MKV/WEBM (EBML), named by their path:
`moov/trak#1/mdia/minf` is the `minf` box of the second `trak` of `moov`.

A recipe: {"op": "flip", "node": "moov/trak/mdia/minf", "offset": 4, "length": 2, "rng": 0}.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

BYTE_OPS = ("flip", "zero", "insert", "delete", "dup", "bitflip", "cut")
NODE_OPS = ("size", "drop", "dup_node", "swap", "field")
SIZE_VALUES = ("zero", "one", "minus1", "plus1", "half", "double", "max", "random")
FIELD_VALUES = ("zero", "one", "ones", "max_signed", "min_signed", "random")


class RecipeError(ValueError):
    """A recipe does not apply to this file (its node is not there)."""


@dataclass(frozen=True)
class Node:
    """One box, chunk or element: bytes [start, end); its size field is `size_len` bytes at `size_at`."""

    path: str
    start: int
    end: int
    header: int  # header length (payload starts at start + header)
    size_at: int
    size_len: int
    size_format: str  # "be" (ISO BMFF), "le" (RIFF) or "vint" (EBML)
    parent: str  # path of the enclosing node ("" at the top)

    @property
    def kind(self) -> str:
        """The path without sibling numbers (moov/trak#1/mdia -> moov/trak/mdia)."""
        return "/".join(part.split("#")[0] for part in self.path.split("/"))


def _named(parent: str, name: str, seen: dict[str, int]) -> str:
    k = seen.get(name, 0)
    seen[name] = k + 1
    label = name if k == 0 else f"{name}#{k}"
    return f"{parent}/{label}" if parent else label


# ISO BMFF (MP4, MOV): containers and the bytes before their children
BMFF_CONTAINERS = {"moov": 0, "trak": 0, "mdia": 0, "minf": 0, "stbl": 0, "dinf": 0, "edts": 0, "udta": 0,
                   "mvex": 0, "moof": 0, "traf": 0, "stsd": 8, "dref": 8, "avc1": 78, "mp4a": 28}


def _bmff(data: bytes, lo: int, hi: int, parent: str, out: list[Node]) -> bool:
    """Parse boxes tiling data[lo:hi]; False (nothing added) when they do not."""
    found, seen, i = [], {}, lo
    while i < hi:
        if hi - i < 8:
            return False
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        header, size_at, size_len = 8, i, 4
        if size == 1 and hi - i >= 16:
            size, header = struct.unpack(">Q", data[i + 8:i + 16])[0], 16
            size_at, size_len = i + 8, 8
        elif size == 0:
            size = hi - i
        name = kind.decode("latin-1")
        if size < header or i + size > hi or not name.isprintable():
            return False
        found.append(Node(_named(parent, name, seen), i, i + size, header, size_at, size_len, "be", parent))
        i += size
    for node in found:
        out.append(node)
        skip = BMFF_CONTAINERS.get(node.path.rsplit("/", 1)[-1].split("#")[0])
        if skip is not None:
            _bmff(data, node.start + node.header + skip, node.end, node.path, out)
    return True


def _riff(data: bytes, lo: int, hi: int, parent: str, out: list[Node]) -> None:
    """Parse RIFF chunks in data[lo:hi] (AVI); RIFF and LIST chunks hold a form type, then chunks."""
    seen, i = {}, lo
    while i + 8 <= hi:
        kind, size = struct.unpack("<4sI", data[i:i + 8])
        end = min(hi, i + 8 + size + (size & 1))
        name = kind.decode("latin-1")
        if name in ("RIFF", "LIST") and i + 12 <= end:
            name = f"{name}.{data[i + 8:i + 12].decode('latin-1').strip()}"
        if not name.replace(".", "").isalnum():
            return
        node = Node(_named(parent, name, seen), i, end, 8, i + 4, 4, "le", parent)
        out.append(node)
        if name.startswith(("RIFF.", "LIST.")):
            _riff(data, i + 12, end, node.path, out)
        i = end


# EBML (MKV, WEBM): the master elements (they hold elements) and names for the ones worth naming
EBML_MASTERS = {0x1A45DFA3: "EBML", 0x18538067: "Segment", 0x114D9B74: "SeekHead", 0x4DBB: "Seek",
                0x1549A966: "Info", 0x1654AE6B: "Tracks", 0xAE: "TrackEntry", 0xE0: "Video", 0xE1: "Audio",
                0x1F43B675: "Cluster", 0xA0: "BlockGroup", 0x1C53BB6B: "Cues", 0xBB: "CuePoint",
                0xB7: "CueTrackPositions", 0x1254C367: "Tags", 0x7373: "Tag", 0x63C0: "Targets",
                0x67C8: "SimpleTag"}
EBML_LEAVES = {0xB0: "PixelWidth", 0xBA: "PixelHeight", 0xB5: "SamplingFrequency", 0x9F: "Channels",
               0x86: "CodecID", 0x63A2: "CodecPrivate", 0xD7: "TrackNumber", 0x83: "TrackType",
               0x4489: "Duration", 0x2AD7B1: "TimestampScale", 0xA3: "SimpleBlock", 0xA1: "Block",
               0xE7: "Timestamp", 0x23E383: "DefaultDuration", 0x6264: "BitDepth", 0x53AB: "SeekID",
               0x53AC: "SeekPosition", 0xB3: "CueTime", 0xF1: "CueClusterPosition", 0x56AA: "CodecDelay",
               0x56BB: "SeekPreRoll", 0x9C: "FlagLacing", 0xBF: "CRC-32", 0xEC: "Void", 0x73C5: "TrackUID",
               0x4282: "DocType", 0x9B: "BlockDuration", 0xF7: "CueTrack"}


def _vint(data: bytes, i: int, keep_marker: bool) -> tuple[int, int] | None:
    """(value, length) of the EBML variable-length integer at i, or None when it is not one."""
    if i >= len(data) or data[i] == 0:
        return None
    length = 9 - data[i].bit_length()
    if i + length > len(data):
        return None
    value = int.from_bytes(data[i:i + length], "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), length


def _ebml(data: bytes, lo: int, hi: int, parent: str, out: list[Node]) -> None:
    seen, i = {}, lo
    while i < hi:
        ident, size = _vint(data, i, True), None
        if ident is not None and ident[1] <= 4:
            size = _vint(data, i + ident[1], False)
        if size is None:
            return
        header = ident[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1
        end = hi if unknown else min(hi, i + header + size[0])
        name = EBML_MASTERS.get(ident[0]) or EBML_LEAVES.get(ident[0]) or f"0x{ident[0]:X}"
        node = Node(_named(parent, name, seen), i, end, header, i + ident[1], size[1], "vint", parent)
        out.append(node)
        if ident[0] in EBML_MASTERS:
            _ebml(data, i + header, end, node.path, out)
        i = end


def parse_nodes(data: bytes) -> list[Node]:
    """The node tree of an MP4/MOV, AVI or MKV/WEBM file, in file order (parents before children); [] for
    anything else."""
    out: list[Node] = []
    if data[:4] == b"RIFF":
        _riff(data, 0, len(data), "", out)
    elif data[:4] == b"\x1a\x45\xdf\xa3":
        _ebml(data, 0, len(data), "", out)
    elif data[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        _bmff(data, 0, len(data), "", out)
    return out


def find_node(nodes: list[Node], path: str) -> Node:
    for node in nodes:
        if node.path == path:
            return node
    raise RecipeError(f"no node {path!r} in this file")


def _position(data: bytes, nodes: list[Node], recipe: dict) -> int:
    if "node" in recipe:
        return min(len(data), find_node(nodes, recipe["node"]).start + recipe.get("offset", 0))
    return min(len(data), int(recipe["at"] * len(data)))


def _size_value(node: Node, how: str, rng: np.random.Generator) -> int:
    size = node.end - node.start if node.size_format != "vint" else node.end - node.start - node.header
    limit = (1 << (8 * node.size_len)) - 1 if node.size_format != "vint" else (1 << (7 * node.size_len)) - 2
    value = {"zero": 0, "one": 1, "minus1": size - 1, "plus1": size + 1, "half": size // 2, "double": 2 * size,
             "max": limit, "random": int(rng.integers(0, limit, endpoint=True))}[how]
    return min(max(value, 0), limit)


def _encode_size(node: Node, value: int) -> bytes:
    if node.size_format == "vint":
        return (value | (1 << (7 * node.size_len))).to_bytes(node.size_len, "big")
    return value.to_bytes(node.size_len, "big" if node.size_format == "be" else "little")


def _field_value(how: str, length: int, rng: np.random.Generator) -> bytes:
    if how == "random":
        return rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    value = {"zero": 0, "one": 1, "ones": (1 << (8 * length)) - 1, "max_signed": (1 << (8 * length - 1)) - 1,
             "min_signed": 1 << (8 * length - 1)}[how]
    return value.to_bytes(length, "big")


def _node_op(data: bytes, nodes: list[Node], recipe: dict, rng: np.random.Generator) -> bytes:
    op, node = recipe["op"], find_node(nodes, recipe["node"])
    if op == "size":
        return data[:node.size_at] + _encode_size(node, _size_value(node, recipe["value"], rng)) + \
            data[node.size_at + node.size_len:]
    if op == "drop":
        return data[:node.start] + data[node.end:]
    if op == "dup_node":
        return data[:node.end] + data[node.start:node.end] + data[node.end:]
    if op == "swap":
        a, b = sorted([node, find_node(nodes, recipe["other"])], key=lambda n: n.start)
        if a.end > b.start:
            raise RecipeError(f"{a.path} and {b.path} overlap")
        return data[:a.start] + data[b.start:b.end] + data[a.end:b.start] + data[a.start:a.end] + data[b.end:]
    if op == "field":
        i = min(node.start + recipe["offset"], len(data))
        return data[:i] + _field_value(recipe["value"], recipe["length"], rng) + data[i + recipe["length"]:]
    raise RecipeError(f"unknown operation {op!r}")


def mutate(data: bytes, recipe: dict) -> bytes:
    """The bytes of `data` changed as `recipe` says (see the module docstring); RecipeError when it does not
    apply."""
    rng = np.random.default_rng(recipe.get("rng", 0))
    op = recipe["op"]
    nodes = parse_nodes(data) if "node" in recipe else []
    if op in NODE_OPS:
        return _node_op(data, nodes, recipe, rng)
    i, length = _position(data, nodes, recipe), recipe.get("length", 1)
    noise = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    if op == "flip":
        return data[:i] + noise + data[i + length:]
    if op == "zero":
        return data[:i] + bytes(length) + data[i + length:]
    if op == "insert":
        return data[:i] + noise + data[i:]
    if op == "delete":
        return data[:i] + data[i + length:]
    if op == "dup":
        return data[:i + length] + data[i:i + length] + data[i + length:]
    if op == "bitflip":
        return data[:i] + bytes([data[i] ^ (1 << int(rng.integers(8)))]) + data[i + 1:] if i < len(data) else data
    if op == "cut":
        return data[:i]
    raise RecipeError(f"unknown operation {op!r}")


def _pick_node(nodes: list[Node], rng: np.random.Generator) -> Node:
    """A node, each kind (path without sibling numbers) equally likely: the few header boxes weigh as much
    as the many frames."""
    kinds = sorted({n.kind for n in nodes})
    kind = kinds[int(rng.integers(len(kinds)))]
    same = [n for n in nodes if n.kind == kind]
    return same[int(rng.integers(len(same)))]


def _length(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 4, 8, 16, 64, 256, 1024, 4096]))


def random_recipe(data: bytes, rng: np.random.Generator) -> dict:
    """A random mutation of `data`: half byte-level (at a fraction of the file or near a node), half
    structure-aware where the file has a structure."""
    nodes = parse_nodes(data)
    recipe = {"rng": int(rng.integers(2 ** 31))}
    if nodes and rng.random() < 0.5:
        node = _pick_node(nodes, rng)
        op = NODE_OPS[int(rng.integers(len(NODE_OPS)))]
        recipe |= {"op": op, "node": node.path}
        if op == "size":
            recipe["value"] = SIZE_VALUES[int(rng.integers(len(SIZE_VALUES)))]
        elif op == "swap":
            siblings = [n for n in nodes if n.parent == node.parent and n.path != node.path]
            if not siblings:
                return recipe | {"op": "drop"}
            recipe["other"] = siblings[int(rng.integers(len(siblings)))].path
        elif op == "field":
            span = max(1, node.end - node.start)
            recipe |= {"offset": int(rng.integers(span)), "length": int(rng.choice([1, 2, 4, 8])),
                       "value": FIELD_VALUES[int(rng.integers(len(FIELD_VALUES)))]}
        return recipe
    op = BYTE_OPS[int(rng.integers(len(BYTE_OPS)))]
    recipe |= {"op": op, "length": _length(rng)}
    if nodes and rng.random() < 0.5:
        node = _pick_node(nodes, rng)
        span = node.header + min(64, node.end - node.start - node.header)  # the header and what follows it
        return recipe | {"node": node.path, "offset": int(rng.integers(max(1, span)))}
    return recipe | {"at": round(float(rng.random()), 6)}


# project files: JSON keys set to odd values, .npy headers rewritten, checkpoint entries replaced
ODD_VALUES = {"zero": 0, "negative": -1, "half": 0.5, "huge": 10 ** 12, "enormous": 10 ** 30, "string": "x",
              "null": None, "list": [], "dict": {}, "true": True, "nan": float("nan"), "inf": float("inf")}
NPY_HEADERS = {"descr": ["<f8", "|u1", "<i2", ">f4", "|O", "|S3"], "fortran_order": [True],
               "shape": ["scalar", "zero", "plus1", "minus1", "reversed", "huge", "extra_dim"]}


def _leaves(obj, prefix: str = "", depth: int = 2) -> list[str]:
    """Dotted paths of the entries of nested dicts, `depth` levels down (a.b.c)."""
    paths = []
    for key, value in obj.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict) and depth > 1:
            paths += _leaves(value, f"{path}.", depth - 1)
    return paths


def _set_path(obj: dict, path: str, value, drop: bool = False) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[key]
    if drop:
        obj.pop(last, None)
    else:
        obj[last] = value


def _npy_header(data: bytes, field: str, value) -> bytes:
    """An .npy file with one header field replaced; the data bytes after the header are kept."""
    import ast
    import io

    stream = io.BytesIO(data)
    major, _ = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    header = read(stream)  # (shape, fortran_order, dtype)
    d = {"descr": np.lib.format.dtype_to_descr(header[2]), "fortran_order": header[1], "shape": header[0]}
    if field == "shape":
        shape = d["shape"]
        d["shape"] = {"scalar": (), "zero": (0, *shape[1:]), "plus1": (shape[0] + 1, *shape[1:]),
                      "minus1": (max(0, shape[0] - 1), *shape[1:]), "reversed": shape[::-1],
                      "huge": (10 ** 12, *shape[1:]), "extra_dim": (*shape, 1)}[value]
    else:
        d[field] = value
    text = repr(d)
    ast.literal_eval(text)
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin-1") + data[stream.tell():]


def _checkpoint(data: bytes, recipe: dict) -> bytes:
    """A torch checkpoint (model.pt) with one entry replaced or dropped, saved again."""
    import io

    import torch

    ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    _set_path(ckpt, recipe["key"], ODD_VALUES.get(recipe.get("value")), drop=recipe["op"] == "ckpt_drop")
    out = io.BytesIO()
    torch.save(ckpt, out)
    return out.getvalue()


def mutate_file(data: bytes, recipe: dict) -> bytes:
    """mutate(), plus the operations on project files: json_set/json_drop (a dotted key of a JSON file),
    npy_header (a field of an .npy header), ckpt_set/ckpt_drop (an entry of a torch checkpoint)."""
    op = recipe["op"]
    if op in ("json_set", "json_drop"):
        obj = json.loads(data)
        _set_path(obj, recipe["key"], ODD_VALUES.get(recipe.get("value")), drop=op == "json_drop")
        return json.dumps(obj).encode()
    if op == "npy_header":
        return _npy_header(data, recipe["field"], recipe["value"])
    if op in ("ckpt_set", "ckpt_drop"):
        return _checkpoint(data, recipe)
    return mutate(data, recipe)


def random_file_recipe(name: str, data: bytes, rng: np.random.Generator) -> dict:
    """A random mutation of the project file `name` (meta.json, config.json, frames.npy, audio.npy, model.pt):
    structure-aware for its format half the time, byte-level (mostly in its first 256 bytes) otherwise."""
    recipe = {"file": name, "rng": int(rng.integers(2 ** 31))}
    pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
    if rng.random() < 0.5:
        if name.endswith(".json"):
            keys = _leaves(json.loads(data))
            op = pick(["json_set", "json_set", "json_drop"])
            return recipe | {"op": op, "key": pick(keys)} | ({"value": pick(list(ODD_VALUES))} if op == "json_set"
                                                               else {})
        if name.endswith(".npy"):
            field = pick(list(NPY_HEADERS))
            return recipe | {"op": "npy_header", "field": field, "value": pick(NPY_HEADERS[field])}
        if name.endswith(".pt"):
            import io

            import torch

            keys = _leaves({k: v for k, v in torch.load(io.BytesIO(data), weights_only=True).items()
                            if k != "state_dict"})
            op = pick(["ckpt_set", "ckpt_set", "ckpt_drop"])
            return recipe | {"op": op, "key": pick(keys)} | ({"value": pick(list(ODD_VALUES))} if op == "ckpt_set"
                                                               else {})
    op = pick(BYTE_OPS)
    at = float(rng.random()) * (min(256, len(data)) / len(data) if rng.random() < 0.7 else 1.0)
    return recipe | {"op": op, "length": _length(rng), "at": round(at, 6)}


def describe(recipe: dict) -> str:
    """A recipe as one line of JSON (keys sorted), for logs and the failure folder."""
    return json.dumps(recipe, sort_keys=True)
