// CMPIShims has no functions of its own: the header's inline functions are the whole door (a C target needs a file).
#include "CMPIShims.h"
