// bench/exit_at_once.cpp — the smallest C++ program: the spawn floor of process.start_join_spawn
// (bench/floors_start.cpp) runs it with posix_spawn and waits for it. It is linked like any C++
// program of the build (the C++ runtime, glibc's dynamic loader), so running it costs what an exec
// of a small C++ program costs on this machine: the kernel's exec, the loader, libc's start-up.
int main() { return 0; }
