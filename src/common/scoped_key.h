// A fixed-width Redis hash tag for a (tenant, id) pair: 32 lower-case hex digits of XXH3-128
// over `tenant NUL id`. Whatever bytes tenant and id hold (':', '{', '}'), the tag neither
// changes the slot nor lets two pairs share keys; the tenant is part of it, so another tenant
// with the same id lands elsewhere. Sessions (s:{tag}) and stored responses (rs:{tag}) use it.
#pragma once

#include <string>
#include <string_view>

namespace redline {

std::string scoped_tag(std::string_view tenant, std::string_view id);

}  // namespace redline
