"""Edge demo: score images with an exported GradCon LiteRT model (numpy, Pillow, ai-edge-litert).

Run ``python -m edge_demo --model DIR/gradcon_f32.tflite --images FOLDER`` from the repository
root. Nothing here imports TensorFlow, Keras or gradcon_tf.
"""
