// Anchor translation unit for the shared precompiled header (src/common/pch.h).
