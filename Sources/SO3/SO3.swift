// SO3: placeholder until its module lands.
