"""worldfm_ros: a ROS 2 camera simulator for generated worlds.

The library core (scene anchors, renderer, frame model, simulation) never imports
rclpy; ``worldfm_ros.ros`` is the thin ROS adapter.
"""

# rosidl installs the generated ``worldfm_ros.msg``/``worldfm_ros.srv`` into the
# colcon install tree; extending the package path lets a source checkout that is
# first on sys.path still find them.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"

# numba (the splat rasterizer, gsply) otherwise probes TBB first and warns when it is old; OpenMP
# ships with numba's wheels.
__import__("os").environ.setdefault("NUMBA_THREADING_LAYER", "omp")
# numba's parallel kernels (the rasterizers) and torch's operators alternate on the same cores; OpenMP
# threads that spin after a parallel region steal those cores from the other runtime (a splat fit
# step ran 10x slower on 2 cores). Idle OpenMP threads sleep instead; read when OpenMP loads.
__import__("os").environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
