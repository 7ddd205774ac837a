/* Logging to stderr, by level, chosen with the environment variable IROH_LOG
 * (error, warn, info, debug, trace, or off; case-insensitive; default: warn). Any other
 * value is reported once on stderr and the default used. */
#ifndef IR_BASE_LOG_H
#define IR_BASE_LOG_H

#include "util.h"

typedef enum ir_log_level {
    IR_LOG_ERROR = 1,
    IR_LOG_WARN = 2,
    IR_LOG_INFO = 3,
    IR_LOG_DEBUG = 4,
    IR_LOG_TRACE = 5,
} ir_log_level;

/* 1 if messages of this level are printed (cheap: the environment is read once). */
int ir_log_enabled(ir_log_level level);
void ir_log(ir_log_level level, const char *fmt, ...) IR_PRINTF(2, 3);

/* The environment variable IROH_C_HOLEPUNCHING (0, 1 or 2; read once, like IROH_LOG):
 * the holepunching mode endpoints use unless the builder sets one
 * (iroh_endpoint_builder_holepunching); 0 when unset. Any other value is reported once on
 * stderr and 0 used. */
int ir_env_holepunching(void);

#define IR_LOG(level, ...)                                                                 \
    do {                                                                                   \
        if (ir_log_enabled(level))                                                         \
            ir_log(level, __VA_ARGS__);                                                    \
    } while (0)

#endif
