#include "core/allocator.h"

namespace rulloc {

namespace internal {
constinit DefaultInstance default_instance;
}  // namespace internal

}  // namespace rulloc
