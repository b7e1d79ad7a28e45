# descent's TensorFlow graph addon (graph.cc; the fused LSTM's ops: lstm_*.cc), built by `npm run setup:native` against the C
# library and headers it extracts from the TensorFlow wheel. `deps` is a link to that folder.
{
  'targets': [{
    'target_name': 'descent_tf_graph',
    'sources': ['graph.cc', 'lstm_op.cc', 'lstm_kernel.cc'],
    'include_dirs': ['<(module_root_dir)/deps/include'],
    'cflags_cc': ['-std=c++17', '-O2', '-fexceptions', '-Wall', '-Wextra', '-Wno-unused-parameter'],
    'cflags_cc!': ['-fno-exceptions'],
    'libraries': ['-Wl,-rpath,\\$$ORIGIN/../../deps/lib', '-ltensorflow', '-ltensorflow_framework'],
    'library_dirs': ['<(module_root_dir)/deps/lib'],
    'defines': ['NAPI_VERSION=8'],
  }],
}
