// The admin port's dashboard page (GET /): self-contained HTML polling GET /admin/stats.
#pragma once

#include <string_view>

namespace redline::admin {

std::string_view dashboard_html();

}  // namespace redline::admin
