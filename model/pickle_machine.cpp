// Long file: the pickle virtual machine, one case per opcode in its name table and its loop.
#include "model/pickle_machine.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace ecgq::ckpt {
namespace {

// Long function: one case per pickle opcode.
const char* opcode_name(uint8_t op) {
  switch (op) {
    case '(':
      return "MARK";
    case '.':
      return "STOP";
    case '0':
      return "POP";
    case '1':
      return "POP_MARK";
    case '2':
      return "DUP";
    case 'F':
      return "FLOAT";
    case 'I':
      return "INT";
    case 'J':
      return "BININT";
    case 'K':
      return "BININT1";
    case 'L':
      return "LONG";
    case 'M':
      return "BININT2";
    case 'N':
      return "NONE";
    case 'P':
      return "PERSID";
    case 'Q':
      return "BINPERSID";
    case 'R':
      return "REDUCE";
    case 'S':
      return "STRING";
    case 'T':
      return "BINSTRING";
    case 'U':
      return "SHORT_BINSTRING";
    case 'V':
      return "UNICODE";
    case 'X':
      return "BINUNICODE";
    case 'a':
      return "APPEND";
    case 'b':
      return "BUILD";
    case 'c':
      return "GLOBAL";
    case 'd':
      return "DICT";
    case '}':
      return "EMPTY_DICT";
    case 'e':
      return "APPENDS";
    case 'g':
      return "GET";
    case 'h':
      return "BINGET";
    case 'i':
      return "INST";
    case 'j':
      return "LONG_BINGET";
    case 'l':
      return "LIST";
    case ']':
      return "EMPTY_LIST";
    case 'o':
      return "OBJ";
    case 'p':
      return "PUT";
    case 'q':
      return "BINPUT";
    case 'r':
      return "LONG_BINPUT";
    case 's':
      return "SETITEM";
    case 't':
      return "TUPLE";
    case ')':
      return "EMPTY_TUPLE";
    case 'u':
      return "SETITEMS";
    case 'G':
      return "BINFLOAT";
    case 0x80:
      return "PROTO";
    case 0x81:
      return "NEWOBJ";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    case 0x85:
      return "TUPLE1";
    case 0x86:
      return "TUPLE2";
    case 0x87:
      return "TUPLE3";
    case 0x88:
      return "NEWTRUE";
    case 0x89:
      return "NEWFALSE";
    case 0x8a:
      return "LONG1";
    case 0x8b:
      return "LONG4";
    case 'B':
      return "BINBYTES";
    case 'C':
      return "SHORT_BINBYTES";
    case 0x8c:
      return "SHORT_BINUNICODE";
    case 0x8d:
      return "BINUNICODE8";
    case 0x8e:
      return "BINBYTES8";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 0x92:
      return "NEWOBJ_EX";
    case 0x93:
      return "STACK_GLOBAL";
    case 0x94:
      return "MEMOIZE";
    case 0x95:
      return "FRAME";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    default:
      return "";
  }
}

// Storage classes by name (torch.<Name>); the dtype of their elements.
bool storage_dtype(const std::string& global, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"FloatStorage", DType::F32},     {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
      {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64},   {"IntStorage", DType::I32},
      {"ShortStorage", DType::I16},     {"CharStorage", DType::I8},    {"ByteStorage", DType::U8},
      {"BoolStorage", DType::Bool},     {"UntypedStorage", DType::U8},
  };
  std::string name;
  if (global.rfind("torch.cuda.", 0) == 0) {
    name = global.substr(11);
  } else if (global.rfind("torch.", 0) == 0) {
    name = global.substr(6);
  } else {
    return false;
  }
  for (const auto& [n, d] : kTable) {
    if (name == n) {
      *out = d;
      return true;
    }
  }
  return false;
}

class Machine {
 public:
  Machine(std::string_view data, const std::string& where, uint64_t file_offset,
          const PickleLimits& limits)
      : data_(data), where_(where), file_offset_(file_offset), lim_(limits) {}

  Expected<PickleResult> run();

 private:
  // The error for the opcode being executed.
  Status fail(const std::string& what) const {
    char op[64];
    std::snprintf(op, sizeof op, "opcode 0x%02x", op_);
    std::string msg = where_ + " byte " + std::to_string(op_pos_) + " (file offset " +
                      std::to_string(file_offset_ + op_pos_) + "): " + op;
    if (op_ >= 32 && op_ < 127) msg += std::string(" '") + char(op_) + "'";
    if (*opcode_name(op_)) msg += std::string(" ") + opcode_name(op_);
    msg += ": " + what;
    return Status(ErrorCode::BadCheckpoint, msg, "checkpoint");
  }

  Status need(uint64_t n) const {
    if (n > data_.size() - pos_) {
      return fail("truncated: needs " + std::to_string(n) + " argument bytes, only " +
                  std::to_string(data_.size() - pos_) + " left");
    }
    return Status::Ok();
  }
  uint64_t le(size_t n) {
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(uint8_t(data_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  Status line(std::string_view* out) {
    size_t nl = data_.find('\n', pos_);
    if (nl == std::string_view::npos) return fail("truncated: missing end of line");
    *out = data_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return Status::Ok();
  }
  Status push(uint32_t v) {
    if (stack_.size() >= lim_.max_stack) {
      return fail("stack exceeds " + std::to_string(lim_.max_stack) + " entries");
    }
    stack_.push_back(v);
    return Status::Ok();
  }
  Status push_new(PyNode node) {
    if (heap_.size() >= lim_.max_nodes) {
      return fail("pickle creates more than " + std::to_string(lim_.max_nodes) + " objects");
    }
    return push(heap_.add(std::move(node)));
  }
  size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }
  Status pop(uint32_t* out) {
    if (stack_.size() <= frame_base()) return fail("stack underflow");
    *out = stack_.back();
    stack_.pop_back();
    return Status::Ok();
  }
  Status top(uint32_t* out) const {
    if (stack_.size() <= frame_base()) return fail("stack underflow");
    *out = stack_.back();
    return Status::Ok();
  }
  // Moves everything above the last MARK into `out` and drops the mark.
  Status pop_mark(std::vector<uint32_t>* out) {
    if (marks_.empty()) return fail("no MARK on the stack");
    size_t base = marks_.back();
    marks_.pop_back();
    if (out) out->assign(stack_.begin() + long(base), stack_.end());
    stack_.resize(base);
    return Status::Ok();
  }
  Status count_items(size_t n) {
    items_ += n;
    if (items_ > lim_.max_items) {
      return fail("containers hold more than " + std::to_string(lim_.max_items) + " references");
    }
    return Status::Ok();
  }
  Status memo_put(uint64_t key) {
    uint32_t v = 0;
    RETURN_IF_ERROR(top(&v));
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      it->second = v;
      return Status::Ok();
    }
    if (memo_.size() >= lim_.max_memo) {
      return fail("memo exceeds " + std::to_string(lim_.max_memo) + " entries");
    }
    memo_.emplace(key, v);
    return Status::Ok();
  }
  Status memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) return fail("memo key " + std::to_string(key) + " was never stored");
    return push(it->second);
  }
  Status make_int_from_bytes(size_t n);
  Status make_text(PyKind kind, uint64_t n);
  Status make_global(std::string_view module, std::string_view name);
  Status make_seq(PyKind kind, std::vector<uint32_t> items);
  Status add_to(uint32_t target, const std::vector<uint32_t>& items, bool pairs);
  Status persistent_load(uint32_t pid);
  Status reduce(uint32_t callable, uint32_t args);
  Status parse_decimal(std::string_view text, int64_t* out);
  Status step();

  std::string_view data_;
  const std::string& where_;
  uint64_t file_offset_;
  PickleLimits lim_;
  PyHeap heap_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
  size_t items_ = 0;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
};

Status Machine::make_int_from_bytes(size_t n) {
  RETURN_IF_ERROR(need(n));
  const auto* p = reinterpret_cast<const uint8_t*>(data_.data() + pos_);
  pos_ += n;
  PyNode node{PyKind::Int};
  if (n == 0) return push_new(node);
  const bool negative = p[n - 1] & 0x80;
  // Bytes beyond the 8th must be pure sign extension for the value to fit int64.
  bool fits = true;
  for (size_t k = 8; k < n; ++k) fits = fits && p[k] == (negative ? 0xFF : 0x00);
  if (n > 8) fits = fits && (bool(p[7] & 0x80) == negative);
  if (!fits) {
    node.kind = PyKind::BigInt;
    return push_new(node);
  }
  uint64_t v = negative ? ~uint64_t(0) : 0;
  for (size_t k = 0; k < n && k < 8; ++k) {
    v &= ~(uint64_t(0xFF) << (8 * k));
    v |= uint64_t(p[k]) << (8 * k);
  }
  node.i = int64_t(v);
  return push_new(node);
}

Status Machine::make_text(PyKind kind, uint64_t n) {
  if (Status s = need(n); !s.ok()) {
    return fail("length " + std::to_string(n) + " exceeds the " +
                std::to_string(data_.size() - pos_) + " bytes left in the pickle (truncated)");
  }
  PyNode node{kind};
  node.s.assign(data_.data() + pos_, size_t(n));
  pos_ += size_t(n);
  return push_new(std::move(node));
}

Status Machine::make_global(std::string_view module, std::string_view name) {
  if (module.size() > lim_.max_global_name || name.size() > lim_.max_global_name) {
    return fail("global name longer than " + std::to_string(lim_.max_global_name) + " bytes");
  }
  PyNode node{PyKind::Global};
  node.s.reserve(module.size() + 1 + name.size());
  node.s.append(module).append(".").append(name);
  return push_new(std::move(node));
}

Status Machine::make_seq(PyKind kind, std::vector<uint32_t> items) {
  RETURN_IF_ERROR(count_items(items.size()));
  if (kind == PyKind::Dict && items.size() % 2 != 0) {
    return fail("odd number of items (" + std::to_string(items.size()) + ") for a dict");
  }
  PyNode node{kind};
  node.items = std::move(items);
  return push_new(std::move(node));
}

Status Machine::add_to(uint32_t target, const std::vector<uint32_t>& items, bool pairs) {
  PyNode& t = heap_.mut(target);
  if (t.kind == PyKind::Opaque) return Status::Ok();  // a custom container: contents dropped
  const PyKind want = pairs ? PyKind::Dict : (op_ == 0x90 ? PyKind::Set : PyKind::List);
  if (t.kind != want) {
    return fail("target is a " + heap_.type_name(target) + ", expected a " +
                (want == PyKind::Dict  ? "dict"
                 : want == PyKind::Set ? "set"
                                       : "list"));
  }
  if (pairs && items.size() % 2 != 0) {
    return fail("odd number of items (" + std::to_string(items.size()) + ") for a dict");
  }
  RETURN_IF_ERROR(count_items(items.size()));
  t.items.insert(t.items.end(), items.begin(), items.end());
  return Status::Ok();
}

Status Machine::persistent_load(uint32_t pid) {
  const PyNode& p = heap_.at(pid);
  const bool storage_tag = p.kind == PyKind::Tuple && !p.items.empty() &&
                           heap_.at(p.items[0]).kind == PyKind::Str &&
                           heap_.at(p.items[0]).s == "storage";
  if (!storage_tag) {
    PyNode node{PyKind::Opaque};
    node.s = "persistent id " + heap_.repr(pid, 100);
    return push_new(std::move(node));
  }
  if (p.items.size() != 5) {
    return fail("storage persistent id has " + std::to_string(p.items.size()) +
                " fields, expected 5 ('storage', class, key, location, numel)");
  }
  const PyNode& cls = heap_.at(p.items[1]);
  const PyNode& key = heap_.at(p.items[2]);
  const PyNode& numel = heap_.at(p.items[4]);
  if (cls.kind != PyKind::Global) {
    return fail("storage class is a " + heap_.type_name(p.items[1]) + ", expected a GLOBAL");
  }
  if (key.kind != PyKind::Str) return fail("storage key is a " + heap_.type_name(p.items[2]));
  if (key.s.size() > lim_.max_storage_key || key.s.empty()) {
    return fail("storage key length " + std::to_string(key.s.size()) + " is not in 1.." +
                std::to_string(lim_.max_storage_key));
  }
  if (numel.kind != PyKind::Int || numel.i < 0) {
    return fail("storage '" + key.s + "' numel is " + heap_.repr(p.items[4], 60) +
                ", expected a non-negative int");
  }
  PyNode node{PyKind::Storage};
  if (!storage_dtype(cls.s, &node.dtype)) {
    node.kind = PyKind::Opaque;
    node.s = "storage of unsupported class " + cls.s;
    return push_new(std::move(node));
  }
  node.s = key.s;
  node.i = numel.i;
  return push_new(std::move(node));
}

Status Machine::reduce(uint32_t callable, uint32_t args) {
  const PyNode& c = heap_.at(callable);
  const PyNode& a = heap_.at(args);
  const std::string name = c.kind == PyKind::Global ? c.s : std::string();
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    if (a.kind != PyKind::Tuple || a.items.size() < 4) {
      return fail(name + " expects (storage, offset, size, stride, ...), got " +
                  heap_.repr(args, 200));
    }
    const uint32_t storage = a.items[0], size = a.items[2], stride = a.items[3];
    const PyNode& off = heap_.at(a.items[1]);
    if (heap_.at(storage).kind != PyKind::Storage) {
      PyNode node{PyKind::Opaque};
      node.s = "tensor on a " + heap_.type_name(storage);
      return push_new(std::move(node));
    }
    if (off.kind != PyKind::Int || off.i < 0) {
      return fail(name + ": storage offset " + heap_.repr(a.items[1], 60) +
                  " is not a non-negative int");
    }
    for (uint32_t t : {size, stride}) {
      const PyNode& tn = heap_.at(t);
      const char* what = t == size ? "size" : "stride";
      if (tn.kind != PyKind::Tuple) {
        return fail(name + ": " + what + " is a " + heap_.type_name(t) + ", expected a tuple");
      }
      if (tn.items.size() > lim_.max_dims) {
        return fail(name + ": " + what + " has " + std::to_string(tn.items.size()) +
                    " dimensions; the limit is " + std::to_string(lim_.max_dims));
      }
      for (uint32_t d : tn.items) {
        if (heap_.at(d).kind != PyKind::Int || heap_.at(d).i < 0) {
          return fail(name + ": " + what + " " + heap_.repr(t, 200) +
                      " has an element that is not a non-negative int");
        }
      }
    }
    if (heap_.at(size).items.size() != heap_.at(stride).items.size()) {
      return fail(name + ": size " + heap_.repr(size, 200) + " and stride " +
                  heap_.repr(stride, 200) + " differ in length");
    }
    PyNode node{PyKind::Tensor};
    node.i = off.i;
    node.items = {storage, size, stride};
    return push_new(std::move(node));
  }
  if (name == "torch._utils._rebuild_parameter" ||
      name == "torch._utils._rebuild_parameter_with_state") {
    if (a.kind == PyKind::Tuple && !a.items.empty()) return push(a.items[0]);
    return fail(name + " expects (data, requires_grad, hooks, ...)");
  }
  if (name == "collections.OrderedDict" && a.kind == PyKind::Tuple) {
    if (a.items.empty()) return make_seq(PyKind::Dict, {});
    const PyNode& src = heap_.at(a.items[0]);
    if (a.items.size() == 1 && src.kind == PyKind::Dict) return make_seq(PyKind::Dict, src.items);
    if (a.items.size() == 1 && (src.kind == PyKind::List || src.kind == PyKind::Tuple)) {
      std::vector<uint32_t> kv;
      bool pairs = true;
      for (uint32_t e : src.items) {
        const PyNode& en = heap_.at(e);
        if ((en.kind != PyKind::Tuple && en.kind != PyKind::List) || en.items.size() != 2) {
          pairs = false;
          break;
        }
        kv.push_back(en.items[0]);
        kv.push_back(en.items[1]);
      }
      if (pairs) return make_seq(PyKind::Dict, std::move(kv));
    }
  }
  PyNode node{PyKind::Opaque};
  node.s = name.empty() ? "result of calling a " + heap_.type_name(callable) : name + "(...)";
  node.items = {callable};
  return push_new(std::move(node));
}

Status Machine::parse_decimal(std::string_view text, int64_t* out) {
  while (!text.empty() && (text.back() == 'L' || text.back() == '\r')) text.remove_suffix(1);
  const char* b = text.data();
  const char* e = b + text.size();
  if (b != e && *b == '+') ++b;
  auto [ptr, ec] = std::from_chars(b, e, *out);
  if (ec != std::errc() || ptr != e || b == e) {
    return fail("'" + std::string(text.substr(0, 40)) + "' is not an int64 decimal");
  }
  return Status::Ok();
}

// Long function: the interpreter's switch, one case per opcode.
Status Machine::step() {
  op_pos_ = pos_;
  op_ = uint8_t(data_[pos_++]);
  uint32_t a = 0, b = 0, c = 0;
  std::vector<uint32_t> items;
  Status s;
  switch (op_) {
    case 0x80:  // PROTO
      if (!(s = need(1)).ok()) return s;
      if (uint8_t(data_[pos_]) > 5) {
        return fail("unsupported pickle protocol " + std::to_string(uint8_t(data_[pos_])));
      }
      ++pos_;
      return Status::Ok();
    case 0x95: {  // FRAME: framing only groups opcodes; the contents follow inline
      if (!(s = need(8)).ok()) return s;
      uint64_t n = le(8);
      if (n > data_.size() - pos_)
        return fail("frame of " + std::to_string(n) + " bytes is truncated");
      return Status::Ok();
    }
    case '.':
      if (!(s = pop(&a)).ok()) return s;
      stopped_ = true;
      stack_.push_back(a);
      return Status::Ok();
    case '(':
      if (marks_.size() >= lim_.max_marks) return fail("too many open MARKs");
      marks_.push_back(stack_.size());
      return Status::Ok();
    case '0':
      if (stack_.size() > frame_base()) {
        stack_.pop_back();
        return Status::Ok();
      }
      return pop_mark(nullptr);
    case '1':
      return pop_mark(nullptr);
    case '2':
      if (!(s = top(&a)).ok()) return s;
      return push(a);
    case 'N':
      return push(PyHeap::kNone);
    case 0x88:
      return push(PyHeap::kTrue);
    case 0x89:
      return push(PyHeap::kFalse);
    case 'K':
    case 'M':
    case 'J': {
      const size_t n = op_ == 'K' ? 1 : op_ == 'M' ? 2 : 4;
      if (!(s = need(n)).ok()) return s;
      PyNode node{PyKind::Int};
      uint64_t v = le(n);
      node.i = op_ == 'J' ? int64_t(int32_t(uint32_t(v))) : int64_t(v);
      return push_new(node);
    }
    case 0x8a:
      if (!(s = need(1)).ok()) return s;
      return make_int_from_bytes(size_t(le(1)));
    case 0x8b: {
      if (!(s = need(4)).ok()) return s;
      int32_t n = int32_t(uint32_t(le(4)));
      if (n < 0) return fail("negative byte count " + std::to_string(n));
      return make_int_from_bytes(size_t(n));
    }
    case 'I':
    case 'L': {
      std::string_view text;
      if (!(s = line(&text)).ok()) return s;
      if (op_ == 'I' && (text == "01" || text == "00"))
        return push(text == "01" ? PyHeap::kTrue : PyHeap::kFalse);
      PyNode node{PyKind::Int};
      if (!(s = parse_decimal(text, &node.i)).ok()) return s;
      return push_new(node);
    }
    case 'F': {
      std::string_view text;
      if (!(s = line(&text)).ok()) return s;
      std::string t(text.substr(0, 64));
      char* end = nullptr;
      PyNode node{PyKind::Float};
      node.f = std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size()) return fail("'" + t + "' is not a float");
      return push_new(node);
    }
    case 'G': {
      if (!(s = need(8)).ok()) return s;
      uint64_t bits = 0;
      for (int k = 0; k < 8; ++k) bits = (bits << 8) | uint8_t(data_[pos_ + size_t(k)]);
      pos_ += 8;
      PyNode node{PyKind::Float};
      std::memcpy(&node.f, &bits, 8);
      return push_new(node);
    }
    case 0x8c:
    case 'U':
    case 'C': {
      if (!(s = need(1)).ok()) return s;
      return make_text(op_ == 'C' ? PyKind::Bytes : PyKind::Str, le(1));
    }
    case 'X':
    case 'B': {
      if (!(s = need(4)).ok()) return s;
      return make_text(op_ == 'B' ? PyKind::Bytes : PyKind::Str, le(4));
    }
    case 'T': {
      if (!(s = need(4)).ok()) return s;
      int32_t n = int32_t(uint32_t(le(4)));
      if (n < 0) return fail("negative length " + std::to_string(n));
      return make_text(PyKind::Str, uint64_t(n));
    }
    case 0x8d:
    case 0x8e:
    case 0x96: {
      if (!(s = need(8)).ok()) return s;
      return make_text(op_ == 0x8d ? PyKind::Str : PyKind::Bytes, le(8));
    }
    case 'S':
    case 'V': {  // text forms: kept verbatim (quotes stripped), escapes are not decoded
      std::string_view text;
      if (!(s = line(&text)).ok()) return s;
      if (op_ == 'S' && text.size() >= 2 && (text[0] == '\'' || text[0] == '"') &&
          text.back() == text[0]) {
        text = text.substr(1, text.size() - 2);
      }
      PyNode node{PyKind::Str};
      node.s.assign(text);
      return push_new(std::move(node));
    }
    case ']':
      return make_seq(PyKind::List, {});
    case ')':
      return make_seq(PyKind::Tuple, {});
    case '}':
      return make_seq(PyKind::Dict, {});
    case 0x8f:
      return make_seq(PyKind::Set, {});
    case 'l':
    case 't':
    case 'd':
    case 0x91:
      if (!(s = pop_mark(&items)).ok()) return s;
      return make_seq(op_ == 'l'   ? PyKind::List
                      : op_ == 't' ? PyKind::Tuple
                      : op_ == 'd' ? PyKind::Dict
                                   : PyKind::Set,
                      std::move(items));
    case 0x85:
    case 0x86:
    case 0x87: {
      const size_t n = size_t(op_ - 0x84);
      if (stack_.size() - frame_base() < n) return fail("stack underflow");
      items.assign(stack_.end() - long(n), stack_.end());
      stack_.resize(stack_.size() - n);
      return make_seq(PyKind::Tuple, std::move(items));
    }
    case 'a':
      if (!(s = pop(&a)).ok() || !(s = top(&b)).ok()) return s;
      return add_to(b, {a}, false);
    case 's':
      if (!(s = pop(&a)).ok() || !(s = pop(&b)).ok() || !(s = top(&c)).ok()) return s;
      return add_to(c, {b, a}, true);
    case 'e':
    case 'u':
    case 0x90:
      if (!(s = pop_mark(&items)).ok() || !(s = top(&a)).ok()) return s;
      return add_to(a, items, op_ == 'u');
    case 'c': {
      std::string_view module, name;
      if (!(s = line(&module)).ok() || !(s = line(&name)).ok()) return s;
      return make_global(module, name);
    }
    case 0x93: {
      if (!(s = pop(&a)).ok() || !(s = pop(&b)).ok()) return s;
      if (heap_.at(a).kind != PyKind::Str || heap_.at(b).kind != PyKind::Str) {
        return fail("module and name must be str, got " + heap_.type_name(b) + " and " +
                    heap_.type_name(a));
      }
      return make_global(heap_.at(b).s, heap_.at(a).s);
    }
    case 'Q':
      if (!(s = pop(&a)).ok()) return s;
      return persistent_load(a);
    case 'P': {
      std::string_view text;
      if (!(s = line(&text)).ok()) return s;
      PyNode node{PyKind::Opaque};
      node.s = "text persistent id";
      return push_new(std::move(node));
    }
    case 'R':
      if (!(s = pop(&a)).ok() || !(s = pop(&b)).ok()) return s;
      return reduce(b, a);
    case 0x81:
    case 0x92: {
      if (op_ == 0x92 && !(s = pop(&c)).ok()) return s;  // kwargs
      if (!(s = pop(&a)).ok() || !(s = pop(&b)).ok()) return s;
      PyNode node{PyKind::Opaque};
      node.s = "instance of " + heap_.type_name(b);
      node.items = {b};
      return push_new(std::move(node));
    }
    case 'i': {
      std::string_view module, name;
      if (!(s = line(&module)).ok() || !(s = line(&name)).ok()) return s;
      if (!(s = pop_mark(nullptr)).ok()) return s;
      PyNode node{PyKind::Opaque};
      node.s = "instance (INST) of " + std::string(module.substr(0, 100)) + "." +
               std::string(name.substr(0, 100));
      return push_new(std::move(node));
    }
    case 'o':
      if (!(s = pop_mark(&items)).ok()) return s;
      if (items.empty()) return fail("OBJ needs a class after the MARK");
      {
        PyNode node{PyKind::Opaque};
        node.s = "instance (OBJ) of " + heap_.type_name(items[0]);
        return push_new(std::move(node));
      }
    case 'b':  // BUILD: object state (e.g. a state_dict's _metadata) is not needed
      if (!(s = pop(&a)).ok() || !(s = top(&b)).ok()) return s;
      return Status::Ok();
    case 'q':
      if (!(s = need(1)).ok()) return s;
      return memo_put(le(1));
    case 'r':
      if (!(s = need(4)).ok()) return s;
      return memo_put(le(4));
    case 'p':
    case 'g': {
      std::string_view text;
      int64_t key = 0;
      if (!(s = line(&text)).ok() || !(s = parse_decimal(text, &key)).ok()) return s;
      if (key < 0) return fail("negative memo key");
      return op_ == 'p' ? memo_put(uint64_t(key)) : memo_get(uint64_t(key));
    }
    case 0x94:
      return memo_put(memo_.size());
    case 'h':
      if (!(s = need(1)).ok()) return s;
      return memo_get(le(1));
    case 'j':
      if (!(s = need(4)).ok()) return s;
      return memo_get(le(4));
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x97:
    case 0x98:
      return fail("not supported in torch checkpoints");
    default:
      return fail("not a pickle opcode (corrupt or not a pickle)");
  }
}

Expected<PickleResult> Machine::run() {
  while (!stopped_) {
    if (pos_ >= data_.size()) {
      op_pos_ = pos_;
      return Status(ErrorCode::BadCheckpoint,
                    where_ + " byte " + std::to_string(pos_) + " (file offset " +
                        std::to_string(file_offset_ + pos_) +
                        "): pickle ends before its STOP opcode (truncated)",
                    "checkpoint");
    }
    RETURN_IF_ERROR(step());
  }
  PickleResult r;
  r.root = stack_.back();
  r.heap = std::move(heap_);
  return r;
}

}  // namespace

Expected<PickleResult> run_pickle(std::string_view data, const std::string& where,
                                  uint64_t file_offset, const PickleLimits& limits) {
  Machine m(data, where, file_offset, limits);
  return m.run();
}

}  // namespace ecgq::ckpt
