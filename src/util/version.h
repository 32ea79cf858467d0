/* version: the one version string of lmpipe (`lmpipe --version`, the protocol's serverInfo). */
#ifndef LMPIPE_UTIL_VERSION_H
#define LMPIPE_UTIL_VERSION_H

#define LMPIPE_VERSION "0.1.0"

#endif
