# The training image: `python cli.py train` with TensorFlow (CPU or, on a CUDA node, GPU).
#   docker build -t digitcnn-train .
#   docker run --rm -v $PWD/runs:/runs digitcnn-train train --out /runs/lenet-plus
# Unproven here (no docker on the development machine); see docs/cluster.md.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY digitcnn ./digitcnn
COPY edge ./edge
COPY export ./export
COPY cli.py ./
# tensorflow[and-cuda] brings CUDA's libraries along, so the same image trains on a GPU node.
RUN pip install --no-cache-dir ".[train]" "tensorflow[and-cuda]>=2.21,<2.22"

# MNIST is downloaded into the run's volume unless DIGITCNN_DATA names a mounted copy.
ENV KERAS_HOME=/runs/.keras TF_CPP_MIN_LOG_LEVEL=2
ENTRYPOINT ["python", "/app/cli.py"]
CMD ["train", "--out", "/runs/lenet-plus"]
