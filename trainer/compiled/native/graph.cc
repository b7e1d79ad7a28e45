// descent's TensorFlow graph addon: a small, generic N-API binding of TensorFlow's C API (graphs,
// operations with attributes, symbolic gradients, sessions, tensors). It knows nothing about
// models: trainer/compiled/ builds each job's training step as a graph in TypeScript. Linked
// against the same libtensorflow that `npm run setup:native` extracts for tfjs-node, so both
// addons share one TensorFlow in the process.
//
// Rules: no global state (every handle is a JS object owning its TF object, freed by its
// finaliser or an explicit close); every string from JavaScript is validated before TensorFlow
// sees it; every TF_Status error becomes a JS exception carrying TensorFlow's message.

#include <node_api.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lstm_kernel.h"
#include "lstm_op.h"
#include "tensorflow/c/c_api.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Errors

// A pending JS exception has been set; unwinds to the N-API entry point.
struct Thrown {};

void ThrowIfFailed(napi_env env, napi_status status) {
  if (status == napi_ok) return;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info* info = nullptr;
    napi_get_last_error_info(env, &info);
    napi_throw_error(env, "DESCENT_TF_NAPI",
                     info && info->error_message ? info->error_message : "N-API call failed");
  }
  throw Thrown{};
}

[[noreturn]] void Fail(napi_env env, const std::string& message, const char* code = "DESCENT_TF_ARGUMENT") {
  napi_throw_error(env, code, message.c_str());
  throw Thrown{};
}

// A TF_Status that throws when TensorFlow reported an error.
class Status {
 public:
  Status() : status_(TF_NewStatus()) {}
  ~Status() { TF_DeleteStatus(status_); }
  Status(const Status&) = delete;
  Status& operator=(const Status&) = delete;
  TF_Status* get() { return status_; }
  void Check(napi_env env, const std::string& what) {
    if (TF_GetCode(status_) == TF_OK) return;
    Fail(env, what + ": " + TF_Message(status_), "DESCENT_TF_STATUS");
  }

 private:
  TF_Status* status_;
};

#define NAPI(call) ThrowIfFailed(env, (call))

// Runs an N-API entry point body, turning a C++ unwinding into the pending JS exception.
template <typename F>
napi_value Guard(napi_env env, F body) {
  try {
    return body();
  } catch (const Thrown&) {
    return nullptr;
  } catch (const std::exception& e) {
    napi_throw_error(env, "DESCENT_TF_INTERNAL", e.what());
    return nullptr;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading JavaScript values

napi_valuetype TypeOf(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI(napi_typeof(env, v, &t));
  return t;
}

bool IsArray(napi_env env, napi_value v) {
  bool result = false;
  NAPI(napi_is_array(env, v, &result));
  return result;
}

uint32_t Length(napi_env env, napi_value array, const std::string& what) {
  if (!IsArray(env, array)) Fail(env, what + " must be an array");
  uint32_t n = 0;
  NAPI(napi_get_array_length(env, array, &n));
  return n;
}

napi_value Element(napi_env env, napi_value array, uint32_t i) {
  napi_value v;
  NAPI(napi_get_element(env, array, i, &v));
  return v;
}

napi_value Property(napi_env env, napi_value object, const char* name) {
  napi_value v;
  NAPI(napi_get_named_property(env, object, name, &v));
  return v;
}

double Number(napi_env env, napi_value v, const std::string& what) {
  if (TypeOf(env, v) != napi_number) Fail(env, what + " must be a number");
  double d;
  NAPI(napi_get_value_double(env, v, &d));
  return d;
}

int64_t Integer(napi_env env, napi_value v, const std::string& what, int64_t lo, int64_t hi) {
  double d = Number(env, v, what);
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    Fail(env, what + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return static_cast<int64_t>(d);
}

bool Boolean(napi_env env, napi_value v, const std::string& what) {
  if (TypeOf(env, v) != napi_boolean) Fail(env, what + " must be a boolean");
  bool b;
  NAPI(napi_get_value_bool(env, v, &b));
  return b;
}

// Names, op types, attribute names and devices: printable ASCII from a fixed alphabet, bounded.
std::string Identifier(napi_env env, napi_value v, const std::string& what, bool allow_empty = false) {
  if (TypeOf(env, v) != napi_string) Fail(env, what + " must be a string");
  size_t length = 0;
  NAPI(napi_get_value_string_utf8(env, v, nullptr, 0, &length));
  if (length > 256) Fail(env, what + " is longer than 256 characters");
  if (length == 0 && !allow_empty) Fail(env, what + " must not be empty");
  std::string s(length, '\0');
  NAPI(napi_get_value_string_utf8(env, v, s.data(), length + 1, &length));
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-' || c == '/' || c == ':';
    if (!ok) Fail(env, what + " may only hold letters, digits and _ . - / :");
  }
  return s;
}

// The data types this binding moves between JavaScript and TensorFlow.
bool SupportedType(int64_t t) {
  switch (static_cast<TF_DataType>(t)) {
    case TF_FLOAT:
    case TF_DOUBLE:
    case TF_INT32:
    case TF_INT64:
    case TF_BOOL:
    case TF_UINT8:
      return true;
    default:
      return false;
  }
}

TF_DataType DataType(napi_env env, napi_value v, const std::string& what) {
  const int64_t t = Integer(env, v, what, 1, 30);
  if (!SupportedType(t)) Fail(env, what + " is not a supported data type (float32, float64, int32, int64, bool, uint8)");
  return static_cast<TF_DataType>(t);
}

std::vector<int64_t> Dims(napi_env env, napi_value array, const std::string& what, int64_t min_dim) {
  const uint32_t n = Length(env, array, what);
  if (n > 8) Fail(env, what + " has more than 8 dimensions");
  std::vector<int64_t> dims(n);
  for (uint32_t i = 0; i < n; i++)
    dims[i] = Integer(env, Element(env, array, i), what + "[" + std::to_string(i) + "]", min_dim, int64_t{1} << 40);
  return dims;
}

// ---------------------------------------------------------------------------------------------
// Tensors: {dtype, shape, data: TypedArray} <-> TF_Tensor (copied: no memory is shared)

napi_typedarray_type ArrayTypeOf(TF_DataType t) {
  switch (t) {
    case TF_FLOAT:
      return napi_float32_array;
    case TF_DOUBLE:
      return napi_float64_array;
    case TF_INT32:
      return napi_int32_array;
    case TF_INT64:
      return napi_bigint64_array;
    default:
      return napi_uint8_array;  // bool, uint8
  }
}

struct TensorDeleter {
  void operator()(TF_Tensor* t) const {
    if (t) TF_DeleteTensor(t);
  }
};

TF_Tensor* TensorFromJs(napi_env env, napi_value value, const std::string& what) {
  if (TypeOf(env, value) != napi_object) Fail(env, what + " must be {dtype, shape, data}");
  const TF_DataType dtype = DataType(env, Property(env, value, "dtype"), what + ".dtype");
  const std::vector<int64_t> dims = Dims(env, Property(env, value, "shape"), what + ".shape", 0);
  size_t count = 1;
  for (int64_t d : dims) count *= static_cast<size_t>(d);
  napi_value data = Property(env, value, "data");
  bool typed = false;
  NAPI(napi_is_typedarray(env, data, &typed));
  if (!typed) Fail(env, what + ".data must be a typed array");
  napi_typedarray_type type;
  size_t length;
  void* bytes;
  NAPI(napi_get_typedarray_info(env, data, &type, &length, &bytes, nullptr, nullptr));
  if (type != ArrayTypeOf(dtype)) Fail(env, what + ".data is not the typed array of its dtype");
  if (length != count) Fail(env, what + ".data has " + std::to_string(length) + " elements, its shape " + std::to_string(count));
  const size_t size = count * TF_DataTypeSize(dtype);
  TF_Tensor* tensor = TF_AllocateTensor(dtype, dims.data(), static_cast<int>(dims.size()), size);
  if (!tensor) Fail(env, what + ": TensorFlow could not allocate the tensor", "DESCENT_TF_STATUS");
  if (size) std::memcpy(TF_TensorData(tensor), bytes, size);
  return tensor;
}

napi_value TensorToJs(napi_env env, TF_Tensor* tensor) {
  const TF_DataType dtype = TF_TensorType(tensor);
  if (!SupportedType(dtype)) Fail(env, "a fetched tensor has an unsupported data type " + std::to_string(dtype));
  const int rank = TF_NumDims(tensor);
  size_t count = 1;
  napi_value shape;
  NAPI(napi_create_array_with_length(env, rank, &shape));
  for (int i = 0; i < rank; i++) {
    const int64_t d = TF_Dim(tensor, i);
    count *= static_cast<size_t>(d);
    napi_value dim;
    NAPI(napi_create_int64(env, d, &dim));
    NAPI(napi_set_element(env, shape, i, dim));
  }
  const size_t size = count * TF_DataTypeSize(dtype);
  if (TF_TensorByteSize(tensor) < size) Fail(env, "a fetched tensor is smaller than its shape", "DESCENT_TF_STATUS");
  void* target = nullptr;
  napi_value buffer;
  NAPI(napi_create_arraybuffer(env, size, &target, &buffer));
  if (size) std::memcpy(target, TF_TensorData(tensor), size);
  napi_value data;
  NAPI(napi_create_typedarray(env, ArrayTypeOf(dtype), count, buffer, 0, &data));
  napi_value result, type;
  NAPI(napi_create_object(env, &result));
  NAPI(napi_create_int32(env, dtype, &type));
  NAPI(napi_set_named_property(env, result, "dtype", type));
  NAPI(napi_set_named_property(env, result, "shape", shape));
  NAPI(napi_set_named_property(env, result, "data", data));
  return result;
}

// ---------------------------------------------------------------------------------------------
// Graph

struct Graph {
  TF_Graph* graph = TF_NewGraph();
  // Operation ids seen by JavaScript are indexes here; TensorFlow owns the operations.
  std::vector<TF_Operation*> ops;
  std::unordered_map<TF_Operation*, int32_t> ids;
  // TensorFlow defers the graph's deletion until the sessions that use it are deleted.
  ~Graph() { TF_DeleteGraph(graph); }

  int32_t Id(TF_Operation* op) {
    auto found = ids.find(op);
    if (found != ids.end()) return found->second;
    const int32_t id = static_cast<int32_t>(ops.size());
    ops.push_back(op);
    ids.emplace(op, id);
    return id;
  }
};

Graph* GraphOf(napi_env env, napi_value object) {
  void* data = nullptr;
  napi_status status = napi_unwrap(env, object, &data);
  if (status != napi_ok || !data) Fail(env, "expected a Graph");
  return static_cast<Graph*>(data);
}

TF_Operation* OpOf(napi_env env, Graph* g, napi_value v, const std::string& what) {
  const int64_t id = Integer(env, v, what, 0, static_cast<int64_t>(g->ops.size()) - 1);
  return g->ops[static_cast<size_t>(id)];
}

// An output is [operationId, index].
TF_Output OutputOf(napi_env env, Graph* g, napi_value v, const std::string& what) {
  if (Length(env, v, what) != 2) Fail(env, what + " must be [operation, index]");
  TF_Operation* op = OpOf(env, g, Element(env, v, 0), what + "[0]");
  const int64_t index = Integer(env, Element(env, v, 1), what + "[1]", 0, TF_OperationNumOutputs(op) - 1);
  return TF_Output{op, static_cast<int>(index)};
}

std::vector<TF_Output> OutputsOf(napi_env env, Graph* g, napi_value array, const std::string& what) {
  const uint32_t n = Length(env, array, what);
  std::vector<TF_Output> outputs(n);
  for (uint32_t i = 0; i < n; i++)
    outputs[i] = OutputOf(env, g, Element(env, array, i), what + "[" + std::to_string(i) + "]");
  return outputs;
}

napi_value OutputToJs(napi_env env, Graph* g, TF_Output out) {
  napi_value pair, op, index;
  NAPI(napi_create_array_with_length(env, 2, &pair));
  NAPI(napi_create_int32(env, g->Id(out.oper), &op));
  NAPI(napi_create_int32(env, out.index, &index));
  NAPI(napi_set_element(env, pair, 0, op));
  NAPI(napi_set_element(env, pair, 1, index));
  return pair;
}

napi_value This(napi_env env, napi_callback_info info, size_t expected, napi_value* args) {
  size_t argc = expected;
  napi_value self;
  NAPI(napi_get_cb_info(env, info, &argc, args, &self, nullptr));
  if (argc < expected) Fail(env, "expected " + std::to_string(expected) + " arguments");
  return self;
}

// One attribute, read and validated from [name, kind, value] before any TensorFlow call.
struct Attr {
  std::string name;
  std::string kind;
  int64_t i = 0;
  float f = 0;
  std::string s;                  // string
  std::vector<int64_t> ints;      // ints, shape
  std::vector<float> floats;      // floats
  std::vector<TF_DataType> types;  // types (and `type` as types[0])
  bool unknown_rank = false;      // shape: null
  std::unique_ptr<TF_Tensor, TensorDeleter> tensor;
};

Attr ReadAttr(napi_env env, napi_value attr, const std::string& what) {
  if (Length(env, attr, what) != 3) Fail(env, what + " must be [name, kind, value]");
  Attr a;
  a.name = Identifier(env, Element(env, attr, 0), what + " name");
  a.kind = Identifier(env, Element(env, attr, 1), what + " kind");
  napi_value value = Element(env, attr, 2);
  const std::string label = what + " (" + a.name + ")";
  const auto bounded = [&](uint32_t n) {
    if (n > 64) Fail(env, label + " has more than 64 values");
    return n;
  };
  if (a.kind == "int") {
    a.i = Integer(env, value, label, -(int64_t{1} << 53), int64_t{1} << 53);
  } else if (a.kind == "float") {
    a.f = static_cast<float>(Number(env, value, label));
  } else if (a.kind == "bool") {
    a.i = Boolean(env, value, label) ? 1 : 0;
  } else if (a.kind == "type") {
    a.types = {DataType(env, value, label)};
  } else if (a.kind == "string") {
    a.s = Identifier(env, value, label, true);
  } else if (a.kind == "ints") {
    a.ints = Dims(env, value, label, -(int64_t{1} << 40));
  } else if (a.kind == "floats") {
    const uint32_t n = bounded(Length(env, value, label));
    for (uint32_t i = 0; i < n; i++) a.floats.push_back(static_cast<float>(Number(env, Element(env, value, i), label)));
  } else if (a.kind == "types") {
    const uint32_t n = bounded(Length(env, value, label));
    for (uint32_t i = 0; i < n; i++) a.types.push_back(DataType(env, Element(env, value, i), label));
  } else if (a.kind == "shape") {
    // null: unknown rank; a dimension of -1: unknown size.
    a.unknown_rank = TypeOf(env, value) == napi_null;
    if (!a.unknown_rank) a.ints = Dims(env, value, label, -1);
  } else if (a.kind == "tensor") {
    a.tensor.reset(TensorFromJs(env, value, label));
  } else {
    Fail(env, label + ": unknown attribute kind " + a.kind);
  }
  return a;
}

// Sets a validated attribute; only a tensor attribute can fail (TensorFlow's status says why).
void ApplyAttr(TF_OperationDescription* desc, const Attr& a, TF_Status* status) {
  const char* name = a.name.c_str();
  if (a.kind == "int") TF_SetAttrInt(desc, name, a.i);
  else if (a.kind == "float") TF_SetAttrFloat(desc, name, a.f);
  else if (a.kind == "bool") TF_SetAttrBool(desc, name, static_cast<unsigned char>(a.i));
  else if (a.kind == "type") TF_SetAttrType(desc, name, a.types[0]);
  else if (a.kind == "string") TF_SetAttrString(desc, name, a.s.data(), a.s.size());
  else if (a.kind == "ints") TF_SetAttrIntList(desc, name, a.ints.data(), static_cast<int>(a.ints.size()));
  else if (a.kind == "floats") TF_SetAttrFloatList(desc, name, a.floats.data(), static_cast<int>(a.floats.size()));
  else if (a.kind == "types") TF_SetAttrTypeList(desc, name, a.types.data(), static_cast<int>(a.types.size()));
  else if (a.kind == "shape")
    TF_SetAttrShape(desc, name, a.unknown_rank ? nullptr : a.ints.data(), a.unknown_rank ? -1 : static_cast<int>(a.ints.size()));
  else if (a.kind == "tensor") TF_SetAttrTensor(desc, name, a.tensor.get(), status);
}

// addOperation({type, name, inputs, attrs, control, device}) → operation id.
// inputs: each an output [op, index] or a list of outputs (a list input).
napi_value AddOperation(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value args[1];
    Graph* g = GraphOf(env, This(env, info, 1, args));
    napi_value spec = args[0];
    if (TypeOf(env, spec) != napi_object) Fail(env, "addOperation takes {type, name, inputs, attrs, control}");
    const std::string type = Identifier(env, Property(env, spec, "type"), "type");
    const std::string name = Identifier(env, Property(env, spec, "name"), "name");
    // Everything is read and validated before TensorFlow's description is created: a description
    // must be finished once started, and a half-described operation would stay in the graph.
    napi_value inputs = Property(env, spec, "inputs");
    const uint32_t ninputs = Length(env, inputs, name + " inputs");
    std::vector<std::vector<TF_Output>> input_lists(ninputs);
    std::vector<bool> is_list(ninputs, false);
    for (uint32_t i = 0; i < ninputs; i++) {
      napi_value input = Element(env, inputs, i);
      const std::string what = name + " input " + std::to_string(i);
      const uint32_t n = Length(env, input, what);
      if (n == 0 || IsArray(env, Element(env, input, 0))) {
        is_list[i] = true;
        input_lists[i] = OutputsOf(env, g, input, what);
      } else {
        input_lists[i] = {OutputOf(env, g, input, what)};
      }
    }
    napi_value control = Property(env, spec, "control");
    std::vector<TF_Operation*> controls;
    if (TypeOf(env, control) != napi_undefined) {
      const uint32_t n = Length(env, control, name + " control");
      for (uint32_t i = 0; i < n; i++) controls.push_back(OpOf(env, g, Element(env, control, i), name + " control"));
    }
    napi_value device = Property(env, spec, "device");
    const std::string device_name =
        TypeOf(env, device) == napi_undefined ? std::string() : Identifier(env, device, name + " device", true);
    napi_value attrs = Property(env, spec, "attrs");
    const uint32_t nattrs = TypeOf(env, attrs) == napi_undefined ? 0 : Length(env, attrs, name + " attrs");
    std::vector<Attr> parsed;
    for (uint32_t i = 0; i < nattrs; i++)
      parsed.push_back(ReadAttr(env, Element(env, attrs, i), name + " attribute " + std::to_string(i)));

    // Nothing below throws before the description is finished (TensorFlow requires that it is).
    TF_OperationDescription* desc = TF_NewOperation(g->graph, type.c_str(), name.c_str());
    Status status;
    for (uint32_t i = 0; i < ninputs; i++) {
      if (is_list[i])
        TF_AddInputList(desc, input_lists[i].data(), static_cast<int>(input_lists[i].size()));
      else
        TF_AddInput(desc, input_lists[i][0]);
    }
    for (TF_Operation* c : controls) TF_AddControlInput(desc, c);
    if (!device_name.empty()) TF_SetDevice(desc, device_name.c_str());
    Status attr_status;
    for (const Attr& a : parsed) {
      if (TF_GetCode(attr_status.get()) == TF_OK) ApplyAttr(desc, a, attr_status.get());
    }
    TF_Operation* op = TF_FinishOperation(desc, status.get());
    attr_status.Check(env, "adding " + type + " " + name);
    status.Check(env, "adding " + type + " " + name);
    napi_value id;
    NAPI(napi_create_int32(env, g->Id(op), &id));
    return id;
  });
}

// addGradients(ys, xs, dxs?, prefix?) → the gradient outputs of sum(ys) with respect to each x
// (null where TensorFlow found no path).
napi_value AddGradients(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value args[4];
    size_t argc = 4;
    napi_value self;
    NAPI(napi_get_cb_info(env, info, &argc, args, &self, nullptr));
    if (argc < 2) Fail(env, "addGradients(ys, xs, dxs?, prefix?)");
    Graph* g = GraphOf(env, self);
    std::vector<TF_Output> ys = OutputsOf(env, g, args[0], "ys");
    std::vector<TF_Output> xs = OutputsOf(env, g, args[1], "xs");
    if (ys.empty() || xs.empty()) Fail(env, "addGradients needs at least one y and one x");
    std::vector<TF_Output> dxs;
    if (argc > 2 && TypeOf(env, args[2]) != napi_undefined && TypeOf(env, args[2]) != napi_null) {
      dxs = OutputsOf(env, g, args[2], "dxs");
      if (dxs.size() != ys.size()) Fail(env, "dxs must have one entry per y");
    }
    std::string prefix;
    if (argc > 3 && TypeOf(env, args[3]) != napi_undefined) prefix = Identifier(env, args[3], "prefix");
    std::vector<TF_Output> dys(xs.size(), TF_Output{nullptr, 0});
    Status status;
    TF_AddGradientsWithPrefix(g->graph, prefix.empty() ? nullptr : prefix.c_str(), ys.data(),
                              static_cast<int>(ys.size()), xs.data(), static_cast<int>(xs.size()),
                              dxs.empty() ? nullptr : dxs.data(), status.get(), dys.data());
    status.Check(env, "adding gradients");
    napi_value result;
    NAPI(napi_create_array_with_length(env, dys.size(), &result));
    for (size_t i = 0; i < dys.size(); i++) {
      napi_value v;
      if (dys[i].oper)
        v = OutputToJs(env, g, dys[i]);
      else
        NAPI(napi_get_null(env, &v));
      NAPI(napi_set_element(env, result, static_cast<uint32_t>(i), v));
    }
    return result;
  });
}

// outputInfo([op, index]) → {dtype, shape: number[] | null (unknown rank); -1 = unknown size}.
napi_value OutputInfo(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value args[1];
    Graph* g = GraphOf(env, This(env, info, 1, args));
    TF_Output out = OutputOf(env, g, args[0], "output");
    Status status;
    const int rank = TF_GraphGetTensorNumDims(g->graph, out, status.get());
    status.Check(env, "reading a shape");
    napi_value result, shape, dtype;
    NAPI(napi_create_object(env, &result));
    if (rank < 0) {
      NAPI(napi_get_null(env, &shape));
    } else {
      std::vector<int64_t> dims(static_cast<size_t>(rank));
      TF_GraphGetTensorShape(g->graph, out, dims.data(), rank, status.get());
      status.Check(env, "reading a shape");
      NAPI(napi_create_array_with_length(env, dims.size(), &shape));
      for (size_t i = 0; i < dims.size(); i++) {
        napi_value d;
        NAPI(napi_create_int64(env, dims[i], &d));
        NAPI(napi_set_element(env, shape, static_cast<uint32_t>(i), d));
      }
    }
    NAPI(napi_create_int32(env, TF_OperationOutputType(out), &dtype));
    NAPI(napi_set_named_property(env, result, "dtype", dtype));
    NAPI(napi_set_named_property(env, result, "shape", shape));
    return result;
  });
}

// numOutputs(op) → the operation's number of outputs.
napi_value NumOutputs(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value args[1];
    Graph* g = GraphOf(env, This(env, info, 1, args));
    napi_value n;
    NAPI(napi_create_int32(env, TF_OperationNumOutputs(OpOf(env, g, args[0], "operation")), &n));
    return n;
  });
}

// operationTypes() → the type of every operation the graph holds (gradients included), in order.
napi_value OperationTypes(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    Graph* g = GraphOf(env, This(env, info, 0, nullptr));
    size_t pos = 0;
    uint32_t i = 0;
    napi_value list;
    NAPI(napi_create_array(env, &list));
    while (TF_Operation* op = TF_GraphNextOperation(g->graph, &pos)) {
      napi_value type;
      NAPI(napi_create_string_utf8(env, TF_OperationOpType(op), NAPI_AUTO_LENGTH, &type));
      NAPI(napi_set_element(env, list, i++, type));
    }
    return list;
  });
}

void FinalizeGraph(napi_env, void* data, void*) { delete static_cast<Graph*>(data); }

napi_value NewGraph(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value self = This(env, info, 0, nullptr);
    Graph* g = new Graph();
    napi_status s = napi_wrap(env, self, g, FinalizeGraph, nullptr, nullptr);
    if (s != napi_ok) {
      delete g;
      ThrowIfFailed(env, s);
    }
    return self;
  });
}

// ---------------------------------------------------------------------------------------------
// Session

struct Session {
  TF_Session* session = nullptr;
  Graph* graph = nullptr;
  napi_ref graph_ref = nullptr;  // keeps the graph object (and so its TF_Graph) alive

  void Close(napi_env env) {
    if (!session) return;
    Status status;
    TF_CloseSession(session, status.get());
    TF_DeleteSession(session, status.get());
    session = nullptr;
    if (graph_ref) napi_delete_reference(env, graph_ref);
    graph_ref = nullptr;
  }
};

// A session collected without close(): closed here, and its hold on the graph object released.
void FinalizeSession(napi_env env, void* data, void*) {
  Session* s = static_cast<Session*>(data);
  s->Close(env);
  delete s;
}

Session* SessionOf(napi_env env, napi_value object) {
  void* data = nullptr;
  napi_status status = napi_unwrap(env, object, &data);
  if (status != napi_ok || !data) Fail(env, "expected a Session");
  Session* s = static_cast<Session*>(data);
  if (!s->session) Fail(env, "the session is closed", "DESCENT_TF_CLOSED");
  return s;
}

void Varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void Field(std::string& out, int field, uint64_t v) {
  Varint(out, static_cast<uint64_t>(field) << 3);
  Varint(out, v);
}

void Message(std::string& out, int field, const std::string& body) {
  Varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  Varint(out, body.size());
  out += body;
}

// ConfigProto (tensorflow/core/protobuf/config.proto), encoded here from validated numbers:
// intra_op_parallelism_threads = 2, inter_op_parallelism_threads = 5, use_per_session_threads = 9,
// graph_options = 10 { optimizer_options = 3 { global_jit_level = 5 (ON_1 = 1, OFF = -1),
// cpu_global_jit = 7 (auto-clustering on the CPU too) } }.
std::string SessionConfig(int64_t intra, int64_t inter, bool xla) {
  std::string optimizer;
  Field(optimizer, 5, xla ? 1 : static_cast<uint64_t>(int64_t{-1}));
  if (xla) Field(optimizer, 7, 1);
  std::string graph_options;
  Message(graph_options, 3, optimizer);
  std::string config;
  Field(config, 2, static_cast<uint64_t>(intra));
  Field(config, 5, static_cast<uint64_t>(inter));
  Field(config, 9, 1);
  Message(config, 10, graph_options);
  return config;
}

// new Session(graph, {intraOpThreads, interOpThreads, xla})
napi_value NewSession(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value args[2];
    napi_value self = This(env, info, 2, args);
    Graph* g = GraphOf(env, args[0]);
    if (TypeOf(env, args[1]) != napi_object) Fail(env, "session options must be an object");
    const int64_t intra = Integer(env, Property(env, args[1], "intraOpThreads"), "intraOpThreads", 1, 1024);
    const int64_t inter = Integer(env, Property(env, args[1], "interOpThreads"), "interOpThreads", 1, 1024);
    const bool xla = Boolean(env, Property(env, args[1], "xla"), "xla");
    const std::string config = SessionConfig(intra, inter, xla);
    Status status;
    TF_SessionOptions* options = TF_NewSessionOptions();
    TF_SetConfig(options, config.data(), config.size(), status.get());
    if (TF_GetCode(status.get()) != TF_OK) {
      TF_DeleteSessionOptions(options);
      status.Check(env, "session options");
    }
    TF_Session* session = TF_NewSession(g->graph, options, status.get());
    TF_DeleteSessionOptions(options);
    status.Check(env, "creating a session");
    Session* s = new Session();
    s->session = session;
    s->graph = g;
    napi_status ws = napi_wrap(env, self, s, FinalizeSession, nullptr, nullptr);
    if (ws != napi_ok) {
      s->Close(env);
      delete s;
      ThrowIfFailed(env, ws);
    }
    NAPI(napi_create_reference(env, args[0], 1, &s->graph_ref));
    return self;
  });
}

// The fetched tensors of one run; with `trace`, the serialized RunMetadata (TensorFlow's per-op
// step stats, FULL_TRACE) is appended as a Uint8Array.
napi_value RunSession(napi_env env, napi_callback_info info, bool trace) {
  napi_value args[3];
  Session* s = SessionOf(env, This(env, info, 3, args));
  Graph* g = s->graph;
  const uint32_t nfeeds = Length(env, args[0], "feeds");
  std::vector<TF_Output> inputs(nfeeds);
  std::vector<std::unique_ptr<TF_Tensor, TensorDeleter>> owned;
  std::vector<TF_Tensor*> values(nfeeds);
  for (uint32_t i = 0; i < nfeeds; i++) {
    napi_value feed = Element(env, args[0], i);
    const std::string what = "feed " + std::to_string(i);
    if (Length(env, feed, what) != 2) Fail(env, what + " must be [output, tensor]");
    inputs[i] = OutputOf(env, g, Element(env, feed, 0), what);
    owned.emplace_back(TensorFromJs(env, Element(env, feed, 1), what));
    values[i] = owned.back().get();
  }
  std::vector<TF_Output> fetches = OutputsOf(env, g, args[1], "fetches");
  const uint32_t ntargets = Length(env, args[2], "targets");
  std::vector<const TF_Operation*> targets(ntargets);
  for (uint32_t i = 0; i < ntargets; i++) targets[i] = OpOf(env, g, Element(env, args[2], i), "target");
  std::vector<TF_Tensor*> outputs(fetches.size(), nullptr);
  // RunOptions { trace_level = 1: FULL_TRACE (3) }.
  const char full_trace[] = {0x08, 0x03};
  TF_Buffer* options = trace ? TF_NewBufferFromString(full_trace, sizeof(full_trace)) : nullptr;
  TF_Buffer* metadata = trace ? TF_NewBuffer() : nullptr;
  Status status;
  TF_SessionRun(s->session, options, inputs.data(), values.data(), static_cast<int>(nfeeds), fetches.data(),
                outputs.data(), static_cast<int>(fetches.size()), targets.data(), static_cast<int>(ntargets),
                metadata, status.get());
  std::vector<std::unique_ptr<TF_Tensor, TensorDeleter>> results;
  for (TF_Tensor* t : outputs) results.emplace_back(t);
  std::string meta = metadata ? std::string(static_cast<const char*>(metadata->data), metadata->length) : "";
  if (options) TF_DeleteBuffer(options);
  if (metadata) TF_DeleteBuffer(metadata);
  status.Check(env, "running the graph");
  napi_value array;
  NAPI(napi_create_array_with_length(env, results.size() + (trace ? 1 : 0), &array));
  for (size_t i = 0; i < results.size(); i++)
    NAPI(napi_set_element(env, array, static_cast<uint32_t>(i), TensorToJs(env, results[i].get())));
  if (trace) {
    void* target = nullptr;
    napi_value buffer, bytes;
    NAPI(napi_create_arraybuffer(env, meta.size(), &target, &buffer));
    if (!meta.empty()) std::memcpy(target, meta.data(), meta.size());
    NAPI(napi_create_typedarray(env, napi_uint8_array, meta.size(), buffer, 0, &bytes));
    NAPI(napi_set_element(env, array, static_cast<uint32_t>(results.size()), bytes));
  }
  return array;
}

// run(feeds: [[output, tensor], ...], fetches: output[], targets: op[]) → tensors of the fetches.
napi_value Run(napi_env env, napi_callback_info info) {
  return Guard(env, [&] { return RunSession(env, info, false); });
}

// trace(feeds, fetches, targets) → [...tensors of the fetches, RunMetadata bytes (FULL_TRACE)].
napi_value Trace(napi_env env, napi_callback_info info) {
  return Guard(env, [&] { return RunSession(env, info, true); });
}

napi_value CloseSession(napi_env env, napi_callback_info info) {
  return Guard(env, [&] {
    napi_value self = This(env, info, 0, nullptr);
    void* data = nullptr;
    if (napi_unwrap(env, self, &data) != napi_ok || !data) Fail(env, "expected a Session");
    static_cast<Session*>(data)->Close(env);
    napi_value undefined;
    NAPI(napi_get_undefined(env, &undefined));
    return undefined;
  });
}

napi_value Version(napi_env env, napi_callback_info) {
  return Guard(env, [&] {
    napi_value v;
    NAPI(napi_create_string_utf8(env, TF_Version(), NAPI_AUTO_LENGTH, &v));
    return v;
  });
}

napi_value Init(napi_env env, napi_value exports) {
  return Guard(env, [&] {
    // The fused LSTM's ops (lstm_op.cc) must be known to TensorFlow before a graph uses them.
    const std::string refused = descent::RegisterLstmOps();
    if (!refused.empty()) Fail(env, "TensorFlow refused descent's LSTM ops: " + refused, "DESCENT_TF_STATUS");
    napi_property_descriptor graph_methods[] = {
        {"addOperation", nullptr, AddOperation, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"addGradients", nullptr, AddGradients, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"outputInfo", nullptr, OutputInfo, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"numOutputs", nullptr, NumOutputs, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"operationTypes", nullptr, OperationTypes, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    napi_value graph_class;
    NAPI(napi_define_class(env, "Graph", NAPI_AUTO_LENGTH, NewGraph, nullptr,
                           sizeof(graph_methods) / sizeof(graph_methods[0]), graph_methods, &graph_class));
    napi_property_descriptor session_methods[] = {
        {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"trace", nullptr, Trace, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"close", nullptr, CloseSession, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    napi_value session_class;
    NAPI(napi_define_class(env, "Session", NAPI_AUTO_LENGTH, NewSession, nullptr,
                           sizeof(session_methods) / sizeof(session_methods[0]), session_methods, &session_class));
    napi_value version;
    NAPI(napi_create_function(env, "version", NAPI_AUTO_LENGTH, Version, nullptr, &version));
    NAPI(napi_set_named_property(env, exports, "Graph", graph_class));
    NAPI(napi_set_named_property(env, exports, "Session", session_class));
    NAPI(napi_set_named_property(env, exports, "version", version));
    napi_value isa;
    NAPI(napi_create_string_utf8(env, descent::LstmIsa(), NAPI_AUTO_LENGTH, &isa));
    NAPI(napi_set_named_property(env, exports, "lstmIsa", isa));
    return exports;
  });
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
