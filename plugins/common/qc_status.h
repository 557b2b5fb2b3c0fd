/* Status codes returned by every qcompile kernel entry point (C ABI). */
#ifndef QC_STATUS_H
#define QC_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
  QC_OK = 0,
  QC_ERR_SHAPE = 1,            /* M, N or K out of range or not the required multiple */
  QC_ERR_ALIGNMENT = 2,        /* a pointer is not 16-byte aligned */
  QC_ERR_FORMAT = 3,           /* unknown format code, or zeros with a signed format */
  QC_ERR_UNSUPPORTED_ARCH = 4, /* the device lacks the instructions (W4A8 needs sm_89+) */
  QC_ERR_CUDA = 5,             /* a CUDA runtime call or kernel launch failed */
  QC_ERR_WORKSPACE = 6,        /* workspace smaller than a mandatory part (per-token scales) */
  QC_ERR_NULL = 7,             /* a required pointer is NULL */
  QC_ERR_ARG = 8               /* bad attribute value (group size, activation mode) */
};

/* Format codes shared by all launch functions (names as in compiler/plugin_specs.json). */
enum {
  QC_FMT_FP6_E3M2 = 0,
  QC_FMT_FP6_E2M3 = 1,
  QC_FMT_INT4 = 2,
  QC_FMT_UINT4 = 3,
  QC_FMT_FP4_E2M1 = 4
};

/* W4A8 activation quantization modes. */
enum { QC_ACT_PER_TENSOR = 0, QC_ACT_PER_TOKEN = 1 };

static inline const char* qc_status_string(int status) {
  switch (status) {
    case QC_OK: return "ok";
    case QC_ERR_SHAPE: return "bad shape";
    case QC_ERR_ALIGNMENT: return "pointer not 16-byte aligned";
    case QC_ERR_FORMAT: return "unsupported format";
    case QC_ERR_UNSUPPORTED_ARCH: return "unsupported GPU architecture";
    case QC_ERR_CUDA: return "CUDA error";
    case QC_ERR_WORKSPACE: return "workspace too small";
    case QC_ERR_NULL: return "null pointer";
    case QC_ERR_ARG: return "bad argument";
    default: return "unknown status";
  }
}

#ifdef __cplusplus
}
#endif
#endif
